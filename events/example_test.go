package events_test

import (
	"fmt"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
)

// Subscribe takes a func of the payload type: a handler with the wrong
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
	bus.Wait()
	// Output: c1 closed with 1001 "restart"
}
