// Package events is tether's typed event bus: the topics that connections
// and plugins publish, one payload struct per topic, and generic helpers that
// make a handler with the wrong signature a compile error.
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
// order Publish was called, one at a time, on the dispatcher goroutine, so
// the events of one connection arrive in the order they happened. A publisher
// never waits for a handler and never calls one while holding a lock of its
// own. The dispatcher goroutine exists only while events are queued; an idle
// Bus owns no goroutine.
//
// Publishing to a topic nobody subscribed to costs one atomic load and no
// allocation, so connections can publish freely, and payloads that are costly
// to build (a copy of a message) are built only when Enabled reports a
// subscriber.
package events
