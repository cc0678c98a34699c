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
	// ErrNotAPayload is returned by Subscribe for a type parameter that is
	// not one of this package's payload structs (a pointer to one, or the
	// Event interface).
	ErrNotAPayload = errors.New("events: not a payload type; subscribe to a struct such as events.Connected")
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
	published  uint64 // events queued so far
	delivered  uint64 // events handed to their subscribers so far
	waiters    []waiter
	closed     bool
}

type waiter struct {
	upTo uint64 // wake when delivered reaches this
	ch   chan struct{}
}

type subscription struct {
	mu     sync.Mutex // held while fn runs, so that unsubscribe can wait for it
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
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			b.logger.Error("events: handler panicked", "topic", e.Topic().String(), "panic", r)
		}
	}()
	if s.active.Load() { // checked under s.mu: unsubscribe may have just returned
		s.call(e)
	}
}

// Enabled reports whether anyone subscribes to the topic of E: one atomic
// load, no allocation. Publishers use it to skip building costly payloads.
func Enabled[E Event](b *Bus) bool {
	if b == nil {
		return false
	}
	return b.counts[topicOf[E]()].Load() > 0
}

// topicOf returns the topic of the payload type E, or 0 (no topic, never
// enabled) for a type that is not one of this package's payload structs,
// such as a pointer to one or the Event interface itself: those would
// otherwise call Topic on a nil value.
func topicOf[E Event]() Topic {
	var zero E
	switch any(zero).(type) {
	case Connected, Disconnected, MessageIn, MessageOut, Error,
		HeartbeatSent, PongReceived, HeartbeatMissed, HeartbeatTimeout,
		ReconnectScheduled, ReconnectAttempt, Reconnected, GaveUp:
		return zero.Topic()
	}
	return 0
}

// Publish queues e for delivery to the subscribers of its topic and returns
// without waiting for them. With no subscriber (or a nil or closed bus) it
// does nothing and allocates nothing.
func Publish[E Event](b *Bus, e E) {
	if b == nil || b.counts[topicOf[E]()].Load() == 0 {
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
	b.published++
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
		b.delivered += uint64(len(batch))
		b.wakeLocked()
	}
	b.running = false
	b.dispatcher = 0
	b.mu.Unlock()
}

// wakeLocked releases the waiters whose events have all been delivered.
func (b *Bus) wakeLocked() {
	keep := b.waiters[:0]
	for _, w := range b.waiters {
		if w.upTo <= b.delivered {
			close(w.ch)
		} else {
			keep = append(keep, w)
		}
	}
	clear(b.waiters[len(keep):])
	b.waiters = keep
}

// Subscribe registers fn for every event of type E published after Subscribe
// returns, and for those already queued. fn runs on the bus's dispatcher
// goroutine, one event at a time, in publish order; it may publish,
// subscribe or unsubscribe. A panic in fn is recovered and logged.
//
// The returned func removes this subscription, and only this one, however
// many others share fn; it is idempotent. When it returns, fn is not running
// and will not be called again (called from fn itself, it returns at once).
func Subscribe[E Event](b *Bus, fn func(E)) (unsubscribe func(), err error) {
	if b == nil {
		return nil, ErrNilBus
	}
	if fn == nil {
		return nil, ErrNilHandler
	}
	t := topicOf[E]()
	if t == 0 {
		var zero E
		return nil, fmt.Errorf("%w: %T", ErrNotAPayload, zero)
	}
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
	if b.dispatcherID() != goid.Get() {
		s.mu.Lock() // wait for a call under way; later calls see active == false
		s.mu.Unlock()
	}
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

func (b *Bus) dispatcherID() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dispatcher
}

// Wait blocks until every event published before the call has been handed
// to its subscribers; events published meanwhile do not hold it up. Called from a handler, it returns at once: a handler
// cannot wait for itself.
func (b *Bus) Wait() {
	if b == nil {
		return
	}
	b.mu.Lock()
	if b.delivered >= b.published || b.dispatcher == goid.Get() {
		b.mu.Unlock()
		return
	}
	w := waiter{upTo: b.published, ch: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	<-w.ch
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
