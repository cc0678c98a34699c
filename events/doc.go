// Package events is tether's typed event bus. The set of events is open:
// an event is any type that implements Event (a topic name, the
// connection or client it is about, a time), and every package publishes
// its own on the same Bus: this package declares only the five events of
// every connection (Connected, Disconnected, MessageIn, MessageOut,
// Error); the heartbeat's are in package heartbeat, the reconnect
// plugin's in package retry, and a third party's plugin declares and
// publishes its own in the same way.
//
// Subscribe[E] takes a func(E), so that a handler with the wrong signature
// is a compile error; subscriptions are by Go type. SubscribeAll receives
// every event, of every type, for loggers, recorders and bridges; for each
// event it is called after the subscribers of the event's own type.
//
// A Bus wraps github.com/asaskevich/EventBus and removes its three traps:
//
//   - EventBus calls synchronous handlers while it holds its bus-wide lock, so
//     a handler that publishes or subscribes deadlocks. Here, Publish only
//     appends to a queue; one dispatcher goroutine drains it through EventBus,
//     and Subscribe never touches EventBus's lock. A handler may publish,
//     subscribe and unsubscribe freely.
//   - EventBus.Unsubscribe compares function pointers, so two closures made
//     from one literal are the same handler to it. Here every subscription is
//     its own token: the func returned by Subscribe removes exactly that one.
//   - EventBus handlers are interface{}, so a wrong signature panics at
//     publish time. Here Subscribe[E] takes a func(E): a mismatch does not
//     compile.
//
// Delivery is asynchronous and in order: events are handed to handlers in the
// order Publish was called, across types, one at a time, on the dispatcher
// goroutine, so the events of one connection arrive in the order they
// happened. A publisher never waits for a handler and never calls one while
// holding a lock of its own. The dispatcher goroutine exists only while
// events are queued; an idle Bus owns no goroutine.
//
// Nothing here waits for anything it started, and nothing depends on which
// goroutine calls: the func that unsubscribes returns at once, from any
// goroutine, a handler's own included (no call of the handler starts after
// it returned; one already running finishes); Close stops the bus and
// returns; Wait(ctx) is the one call that waits, for the events published
// before it, bounded by ctx. A handler that calls Wait would wait for its
// own return, so it gets ctx's error.
//
// Publishing an event nobody subscribed to allocates nothing: for this
// package's events it costs an atomic load or two, for other types a map
// lookup as well. Connections publish freely, and payloads that are costly
// to build (a copy of a message) are built only when Enabled reports a
// subscriber.
package events
