package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	EventBus "github.com/asaskevich/EventBus"
)

// Errors returned by Subscribe and SubscribeAll.
var (
	// ErrNilBus is returned when a nil *Bus is given to Subscribe.
	ErrNilBus = errors.New("events: nil bus")
	// ErrNilHandler is returned when a nil handler is given to Subscribe.
	ErrNilHandler = errors.New("events: nil handler")
	// ErrBusClosed is returned by Subscribe after Close.
	ErrBusClosed = errors.New("events: bus closed")
	// ErrInterfaceType is returned by Subscribe (and Except) for a type
	// parameter that is an interface (Event itself, say): events are
	// published as values of their own type, so no event would ever reach
	// such a handler. Use SubscribeAll to receive every event.
	ErrInterfaceType = errors.New("events: an interface is no event type; subscribe to the event's own type, or use SubscribeAll")
)

// Bus carries events from connections, clients and plugins to subscribers.
// Create it with NewBus; the zero value is not usable. A nil *Bus is valid
// for publishing: it publishes nothing. All methods and functions taking a
// Bus are safe for concurrent use.
type Bus struct {
	eb     EventBus.Bus
	logger *slog.Logger

	// The events of every connection have records of their own, so that
	// Enabled needs no map lookup on the per-message path.
	connected, disconnected, messageIn, messageOut, errs topic

	types sync.Map     // reflect.Type -> *topic, for every other event type
	all   topic        // SubscribeAll's subscriptions
	total atomic.Int32 // live subscriptions of every kind

	closed atomic.Bool // set by Close, under mu; read without it by Publish and Enabled

	mu        sync.Mutex // guards everything below; never held while a handler runs
	queue     []envelope
	spare     []envelope
	running   bool   // a dispatcher goroutine is draining the queue
	published uint64 // events queued so far
	delivered uint64 // events whose handlers have all returned
	waiters   []waiter
}

// topic is the subscription list of one event type.
type topic struct {
	n       atomic.Int32 // live subscriptions
	skipped atomic.Int32 // SubscribeAll subscriptions that skip this type (Except)
	subs    atomic.Pointer[[]*subscription]
}

// wanted reports whether an event of record t (nil: a type nobody
// subscribes to nor skips) has a subscriber: of its type, or of every
// event without skipping it.
func (b *Bus) wanted(t *topic) bool {
	if all := b.all.n.Load(); all > 0 && (t == nil || t.skipped.Load() < all) {
		return true
	}
	return t != nil && t.n.Load() > 0
}

// envelope is what travels through EventBus: an event and the record of
// its type.
type envelope struct {
	t *topic
	e Event
}

type waiter struct {
	upTo uint64 // wake when delivered reaches this
	ch   chan struct{}
}

type subscription struct {
	active atomic.Bool
	call   func(Event)
	skip   []*topic // for SubscribeAll: the types it skips (Except)
}

// ebTopic is the one EventBus topic every event is dispatched on. Types are
// told apart by the envelope, so that subscribing to a new type never needs
// EventBus's lock, which EventBus holds while it calls handlers.
const ebTopic = "tether.events"

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
		if o != nil {
			o(b)
		}
	}
	if err := b.eb.Subscribe(ebTopic, b.fanout); err != nil {
		panic(fmt.Sprintf("events: EventBus refused a func handler: %v", err)) // cannot happen: fanout is a func
	}
	return b
}

// dynamic is what topicOf returns for an interface type parameter: the
// event's type is known only from its value (see Publish).
var dynamic topic

// topicOf returns the record of type E, creating it if create is set, or
// nil; &dynamic if E is an interface type (never created).
func topicOf[E any](b *Bus, create bool) *topic {
	var zero E
	switch any(zero).(type) {
	case Connected:
		return &b.connected
	case Disconnected:
		return &b.disconnected
	case MessageIn:
		return &b.messageIn
	case MessageOut:
		return &b.messageOut
	case Error:
		return &b.errs
	}
	rt := reflect.TypeFor[E]()
	if t, ok := b.types.Load(rt); ok {
		return t.(*topic)
	}
	if rt.Kind() == reflect.Interface {
		return &dynamic
	}
	if !create {
		return nil
	}
	t, _ := b.types.LoadOrStore(rt, new(topic))
	return t.(*topic)
}

// Enabled reports whether anyone subscribes to events of type E (or to
// every event): for this package's own events one or two atomic loads, for
// other types a map lookup as well; no allocation either way. Publishers
// use it to skip building costly payloads. On a closed bus, whose events
// are dropped, it reports false. For an interface E, whose events may be
// of any type (see Publish), it reports whether anyone subscribes to
// anything.
func Enabled[E Event](b *Bus) bool {
	if b == nil || b.closed.Load() {
		return false
	}
	t := topicOf[E](b, false)
	if t == &dynamic {
		return b.total.Load() > 0
	}
	return b.wanted(t)
}

// Publish queues e for delivery to the subscribers of its type and to
// those of every event, and returns without waiting for them. With no
// subscriber (or a nil or closed bus) it does nothing and allocates
// nothing.
//
// Events are delivered in the order Publish was called, on the bus's
// dispatcher goroutine, one at a time: the events of one connection arrive
// in the order its goroutines published them.
//
// E is normally the event's own type. When it is an interface (a bridge
// forwards the events.Event its SubscribeAll handler received), the event
// goes to the subscribers of its dynamic type; a nil one is dropped.
func Publish[E Event](b *Bus, e E) {
	if b == nil || b.closed.Load() {
		return
	}
	t := topicOf[E](b, false)
	if t == &dynamic {
		b.publishValue(e)
		return
	}
	if !b.wanted(t) {
		return
	}
	b.enqueue(t, e)
}

// publishValue publishes an event whose type is known only from its value.
func (b *Bus) publishValue(e Event) {
	if e == nil {
		return
	}
	var t *topic
	switch e.(type) {
	case Connected:
		t = &b.connected
	case Disconnected:
		t = &b.disconnected
	case MessageIn:
		t = &b.messageIn
	case MessageOut:
		t = &b.messageOut
	case Error:
		t = &b.errs
	default:
		if v, ok := b.types.Load(reflect.TypeOf(e)); ok {
			t = v.(*topic)
		}
	}
	if !b.wanted(t) {
		return
	}
	b.enqueue(t, e)
}

func (b *Bus) enqueue(t *topic, e Event) {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, envelope{t: t, e: e})
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
	b.mu.Lock()
	for len(b.queue) > 0 {
		batch := b.queue
		b.queue, b.spare = b.spare[:0], nil
		b.mu.Unlock()
		for i := range batch {
			b.eb.Publish(ebTopic, &batch[i])
			batch[i] = envelope{}
			b.mu.Lock()
			b.delivered++
			b.wakeLocked()
			b.mu.Unlock()
		}
		b.mu.Lock()
		b.spare = batch[:0]
	}
	b.running = false
	b.mu.Unlock()
}

// fanout is called by EventBus, on the dispatcher goroutine, for every
// event: the subscribers of its type first, then those of every event, each
// list in subscription order. Both lists are read before the first call, so
// that a subscription a handler makes starts with the next event, whichever
// list it joins.
func (b *Bus) fanout(env *envelope) {
	all := *loadSubs(&b.all)
	if env.t != nil {
		for _, s := range *loadSubs(env.t) {
			b.call(s, env.e)
		}
	}
	for _, s := range all {
		if !slices.Contains(s.skip, env.t) {
			b.call(s, env.e)
		}
	}
}

var noSubs = []*subscription{}

func loadSubs(t *topic) *[]*subscription {
	if p := t.subs.Load(); p != nil {
		return p
	}
	return &noSubs
}

func (b *Bus) call(s *subscription, e Event) {
	if !s.active.Load() {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			b.logger.Error("events: handler panicked", "event", topicName(e), "panic", r)
		}
	}()
	s.call(e)
}

// topicName is e.Topic() for the panic log, or e's type if Topic panics
// too (a nil pointer to an event type, say): a panic in the deferred
// recover would end the process.
func topicName(e Event) (name string) {
	defer func() {
		if recover() != nil {
			name = fmt.Sprintf("%T", e)
		}
	}()
	return e.Topic()
}

// wakeLocked releases the waiters whose events have all been delivered.
func (b *Bus) wakeLocked() {
	if len(b.waiters) == 0 {
		return
	}
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

// Subscribe registers fn for every event of type E published after
// Subscribe returns (and for those already queued). E is the event's
// concrete type, such as events.Disconnected or heartbeat.Timeout; a
// handler of the wrong type does not compile. An interface type parameter
// returns ErrInterfaceType: use SubscribeAll.
//
// fn runs on the bus's dispatcher goroutine, one event at a time, in
// publish order. It may publish, subscribe and unsubscribe. It should not
// block for long: every other subscriber waits behind it. A panic in fn is
// recovered and logged.
//
// The returned func removes this subscription, and only this one, however
// many others share fn; it is idempotent and returns at once, from any
// goroutine (fn's own included). Once it has returned no call of fn starts
// any more; a call already running on the dispatcher finishes (Wait waits
// for it).
func Subscribe[E Event](b *Bus, fn func(E)) (unsubscribe func(), err error) {
	if b == nil {
		return nil, ErrNilBus
	}
	if fn == nil {
		return nil, ErrNilHandler
	}
	if reflect.TypeFor[E]().Kind() == reflect.Interface {
		return nil, fmt.Errorf("%w: %v is an interface", ErrInterfaceType, reflect.TypeFor[E]())
	}
	return b.add(topicOf[E](b, true), func(e Event) { fn(e.(E)) }, nil)
}

// SubscribeAll registers fn for every event published on the bus, of
// every type, this package's and any other package's: for loggers,
// recorders and bridges. Delivery, ordering and the returned func are as
// for Subscribe. For each event, the subscribers of its own type are
// called before those of SubscribeAll.
//
// Subscribing to every event makes connections publish every message
// (MessageIn, MessageOut), which costs a copy per message. A subscriber
// that has no use for some types says so with except: events of those
// types never reach fn, and fn does not count as their subscriber, so
// they are not even built for it:
//
//	events.SubscribeAll(bus, log, events.Except[events.MessageIn](), events.Except[events.MessageOut]())
func SubscribeAll(b *Bus, fn func(Event), except ...Skip) (unsubscribe func(), err error) {
	if b == nil {
		return nil, ErrNilBus
	}
	if fn == nil {
		return nil, ErrNilHandler
	}
	var skip []*topic
	for _, x := range except {
		if x.of == nil {
			return nil, fmt.Errorf("%w: a zero Skip; make one with Except", ErrInterfaceType)
		}
		t, err := x.of(b)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(skip, t) {
			skip = append(skip, t)
		}
	}
	return b.add(&b.all, fn, skip)
}

// Skip names an event type a SubscribeAll subscription skips; make one
// with Except.
type Skip struct {
	of func(*Bus) (*topic, error)
}

// Except returns the Skip of events of type E, for SubscribeAll. E must be
// a concrete type (ErrInterfaceType otherwise).
func Except[E Event]() Skip {
	return Skip{of: func(b *Bus) (*topic, error) {
		if reflect.TypeFor[E]().Kind() == reflect.Interface {
			return nil, fmt.Errorf("%w: Except[%v]", ErrInterfaceType, reflect.TypeFor[E]())
		}
		return topicOf[E](b, true), nil
	}}
}

func (b *Bus) add(t *topic, call func(Event), skip []*topic) (func(), error) {
	s := &subscription{call: call, skip: skip}
	s.active.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrBusClosed
	}
	old := *loadSubs(t)
	next := make([]*subscription, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	t.subs.Store(&next)
	for _, x := range skip { // before n, so that Enabled never sees the subscription without its skips
		x.skipped.Add(1)
	}
	t.n.Add(1)
	b.total.Add(1)
	var once sync.Once
	return func() { once.Do(func() { b.remove(t, s) }) }, nil
}

func (b *Bus) remove(t *topic, s *subscription) {
	s.active.Store(false) // checked by the dispatcher before each call
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *loadSubs(t)
	next := make([]*subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	t.subs.Store(&next)
	t.n.Add(-1)
	for _, x := range s.skip { // after n, for the same reason
		x.skipped.Add(-1)
	}
	b.total.Add(-1)
}

// Wait blocks until every event published before the call has been handed
// to its subscribers and their calls have returned, or until ctx is done;
// events published meanwhile do not hold it up. It returns nil, or ctx's
// error. A handler that calls Wait waits for its own return: it gets ctx's
// error when ctx ends, never nil.
func (b *Bus) Wait(ctx context.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if b.delivered >= b.published {
		b.mu.Unlock()
		return nil
	}
	w := waiter{upTo: b.published, ch: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the bus and returns at once: later events are discarded
// (Publish allocates nothing, Enabled reports false) and Subscribe and
// SubscribeAll return ErrBusClosed. Events already queued are still
// delivered; Close does not wait for them (Wait does). Close is idempotent.
func (b *Bus) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.closed.Store(true)
	b.mu.Unlock()
}
