package events_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
)

// Subscribe takes a func of the event's type: a handler with the wrong
// signature does not compile. Delivery is asynchronous and ordered; Wait
// lets a program (or a test) catch up.
func ExampleSubscribe() {
	bus := events.NewBus()
	defer bus.Close()

	unsubscribe, err := events.Subscribe(bus, func(e events.Disconnected) {
		fmt.Printf("%s closed with %d %q\n", e.ConnID, e.Code, e.Reason)
	})
	if err != nil {
		panic(err)
	}
	defer unsubscribe()

	events.Publish(bus, events.Disconnected{ConnID: "c1", Code: ws.StatusGoingAway, Reason: "restart"})
	if err := bus.Wait(context.Background()); err != nil {
		panic(err)
	}
	// Output: c1 closed with 1001 "restart"
}

// SubscribeAll receives every event, of every package's types, after the
// subscribers of each event's own type: the shape of a logger, a recorder
// or a bridge to another system.
func ExampleSubscribeAll() {
	bus := events.NewBus()
	defer bus.Close()

	unsubscribe, err := events.SubscribeAll(bus, func(e events.Event) {
		fmt.Printf("%-20s %s\n", e.Topic(), e.Source())
	})
	if err != nil {
		panic(err)
	}
	defer unsubscribe()

	events.Publish(bus, events.Connected{ConnID: "c1"})
	events.Publish(bus, events.MessageIn{ConnID: "c1", Op: ws.OpText, Payload: []byte("hi")})
	events.Publish(bus, events.Disconnected{ConnID: "c1", Code: ws.StatusNormalClosure})
	if err := bus.Wait(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// tether.connected     c1
	// tether.message.in    c1
	// tether.disconnected  c1
}

// Slow is an event of a package other than events: any type that
// implements events.Event is one. A value receiver on a struct is the usual
// shape.
type Slow struct {
	ConnID string
	Took   time.Duration
	At     time.Time
}

// Topic names the event for logs and bridges: "package.event".
func (Slow) Topic() string { return "myapp.slow" }

// Source is the connection the event is about.
func (e Slow) Source() string { return e.ConnID }

// Time is when it happened.
func (e Slow) Time() time.Time { return e.At }

// A third party declares its own event type and publishes it on the same
// bus as tether's events; typed subscribers and SubscribeAll get it like
// any other.
func Example_thirdPartyEvent() {
	bus := events.NewBus()
	defer bus.Close()

	if _, err := events.Subscribe(bus, func(e Slow) {
		fmt.Printf("%s answered in %v\n", e.ConnID, e.Took)
	}); err != nil {
		panic(err)
	}
	if _, err := events.SubscribeAll(bus, func(e events.Event) {
		fmt.Println("log:", e.Topic())
	}); err != nil {
		panic(err)
	}

	// Enabled is the cheap check a publisher makes before it builds a
	// costly payload.
	if events.Enabled[Slow](bus) {
		events.Publish(bus, Slow{ConnID: "c7", Took: 1500 * time.Millisecond})
	}
	if err := bus.Wait(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// c7 answered in 1.5s
	// log: myapp.slow
}
