package events

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	EventBus "github.com/asaskevich/EventBus"

	"github.com/tetherws/tether/internal/goid"
)

// Errors returned by Subscribe.
var (
	// ErrNilBus is returned when a nil *Bus is given to Subscribe.
	ErrNilBus = errors.New("events: nil bus")
	// ErrNilHandler is returned when a nil handler is given to Subscribe.
	ErrNilHandler = errors.New("events: nil handler")
	// ErrBusClosed is returned by Subscribe after Close.
	ErrBusClosed = errors.New("events: bus closed")
)

// Bus carries events from connections and plugins to subscribers. Create it
// with NewBus; the zero value is not usable. A nil *Bus is valid for
// publishing: it publishes nothing. All methods are safe for concurrent use.
type Bus struct {
	eb     EventBus.Bus
	logger *slog.Logger
	counts [topicEnd]atomic.Int32 // live subscriptions per topic
	subs   [topicEnd]atomic.Pointer[[]*subscription]

	mu         sync.Mutex // guards everything below; never held while a handler runs
	queue      []Event
	spare      []Event
	running    bool   // a dispatcher goroutine is draining the queue
	dispatcher uint64 // its goroutine id, while running
	waiters    []chan struct{}
	closed     bool
}

type subscription struct {
	active atomic.Bool
	call   func(Event)
}

// BusOption configures a Bus.
type BusOption func(*Bus)

// WithLogger sets where a handler's panic is reported (default slog.Default()).
func WithLogger(l *slog.Logger) BusOption {
	return func(b *Bus) {
		if l != nil {
			b.logger = l
		}
	}
}

// NewBus returns an empty Bus over a new EventBus.
func NewBus(opts ...BusOption) *Bus {
	b := &Bus{eb: EventBus.New(), logger: slog.Default()}
	for _, o := range opts {
		o(b)
	}
	for t := Topic(1); t < topicEnd; t++ {
		empty := []*subscription{}
		b.subs[t].Store(&empty)
		// One EventBus handler per topic, registered now so that Subscribe
		// never needs EventBus's lock, which EventBus holds while it calls
		// handlers. Subscription lists are ours: copy-on-write slices.
		if err := b.eb.Subscribe(t.String(), b.fanout); err != nil {
			panic(fmt.Sprintf("events: EventBus refused a func handler: %v", err)) // cannot happen: fanout is a func
		}
	}
	return b
}

// fanout is called by EventBus, on the dispatcher goroutine, for every event.
func (b *Bus) fanout(e Event) {
	for _, s := range *b.subs[e.Topic()].Load() {
		if s.active.Load() {
			b.call(s, e)
		}
	}
}

func (b *Bus) call(s *subscription, e Event) {
	defer func() {
		if r := recover(); r != nil {
			b.logger.Error("events: handler panicked", "topic", e.Topic().String(), "panic", r)
		}
	}()
	s.call(e)
}

// Enabled reports whether anyone subscribes to the topic of E: one atomic
// load, no allocation. Publishers use it to skip building costly payloads.
func Enabled[E Event](b *Bus) bool {
	if b == nil {
		return false
	}
	var zero E
	return b.counts[zero.Topic()].Load() > 0
}

// Publish queues e for delivery to the subscribers of its topic and returns
// without waiting for them. With no subscriber (or a nil or closed bus) it
// does nothing and allocates nothing.
func Publish[E Event](b *Bus, e E) {
	if b == nil || b.counts[e.Topic()].Load() == 0 {
		return
	}
	b.enqueue(e)
}

func (b *Bus) enqueue(e Event) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, e)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.drain()
	}
}

// drain delivers queued events in order and exits when the queue is empty.
func (b *Bus) drain() {
	id := goid.Get()
	b.mu.Lock()
	b.dispatcher = id
	for len(b.queue) > 0 {
		batch := b.queue
		b.queue, b.spare = b.spare[:0], nil
		b.mu.Unlock()
		for i, e := range batch {
			b.eb.Publish(e.Topic().String(), e)
			batch[i] = nil
		}
		b.mu.Lock()
		b.spare = batch[:0]
	}
	b.running = false
	b.dispatcher = 0
	for _, w := range b.waiters {
		close(w)
	}
	b.waiters = nil
	b.mu.Unlock()
}

// Subscribe registers fn for every event of type E published after Subscribe
// returns, and for those already queued. fn runs on the bus's dispatcher
// goroutine, one event at a time, in publish order; it may publish,
// subscribe or unsubscribe. A panic in fn is recovered and logged.
//
// The returned func removes this subscription, and only this one, however
// many others share fn; it is idempotent. After it returns, fn is not called
// again, except for a call already running.
func Subscribe[E Event](b *Bus, fn func(E)) (unsubscribe func(), err error) {
	if b == nil {
		return nil, ErrNilBus
	}
	if fn == nil {
		return nil, ErrNilHandler
	}
	var zero E
	t := zero.Topic()
	s := &subscription{call: func(e Event) { fn(e.(E)) }}
	s.active.Store(true)

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBusClosed
	}
	old := *b.subs[t].Load()
	next := make([]*subscription, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	b.subs[t].Store(&next)
	b.counts[t].Add(1)

	var once sync.Once
	return func() { once.Do(func() { b.remove(t, s) }) }, nil
}

func (b *Bus) remove(t Topic, s *subscription) {
	s.active.Store(false)
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs[t].Load()
	next := make([]*subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	b.subs[t].Store(&next)
	b.counts[t].Add(-1)
}

// Wait blocks until every event published before the call has been handed
// to its subscribers. Called from a handler, it returns at once: a handler
// cannot wait for itself.
func (b *Bus) Wait() {
	if b == nil {
		return
	}
	b.mu.Lock()
	if !b.running || b.dispatcher == goid.Get() {
		b.mu.Unlock()
		return
	}
	w := make(chan struct{})
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	<-w
}

// Close delivers what is queued, then stops the bus: later events are
// discarded and Subscribe returns ErrBusClosed. Close is idempotent.
func (b *Bus) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.Wait()
}
