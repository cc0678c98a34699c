package tethertest_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
	"github.com/tetherws/tether/tethertest"
)

// A client with the recipe's heartbeat and retry against an in-memory
// server: a half-open connection (the server's answers black-holed) is
// detected 40 s after the last pong, and the client comes back once the
// server stops refusing. Minutes of simulated time, no waiting.
func Example() {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := tethertest.NewClock(start)
	bus := events.NewBus()
	defer bus.Close()
	clock.Watch(bus)
	rec, _ := tethertest.NewRecorder(bus, start, tethertest.Keep(func(e events.Event) bool {
		return e.Topic() != (events.Error{}).Topic() // the fatal Error event comes with every abort; leave it out here
	}))

	srv, err := tethertest.NewServer(tether.WithClock(clock), tether.WithoutHeartbeat()) // the client finds the half-open connection alone
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	c, err := tether.Dial(ctx, srv.URL(), srv.DialOption(), // the heartbeat is on: ping every 30 s, pong within 10 s
		tether.WithClock(clock), tether.WithBus(bus), tether.WithClientID("app"),
	)
	if err != nil {
		panic(err)
	}
	defer c.Close(ws.StatusNormalClosure, "")

	_ = clock.Step(ctx, 30*time.Second, 1) // one ping, answered
	srv.BlackHole(tethertest.ToClient)     // the server hears, the client never does
	_ = srv.Refuse(http.StatusServiceUnavailable, 1)
	_ = clock.Step(ctx, 40*time.Second, 1) // ping at 60 s unanswered: dead at 70 s
	srv.BlackHole(0)
	// The reconnect loop works between its timers where no clock can see
	// it: wait for its event, then step to its next timer.
	scheduled := func(n int) {
		_, _ = rec.WaitFor(ctx, func(e events.Event) bool {
			s, ok := e.(retry.Scheduled)
			return ok && s.Attempt == n
		})
	}
	scheduled(1)
	_ = clock.Step(ctx, time.Second, 1) // refused
	scheduled(2)
	_ = clock.Step(ctx, 2*time.Second, 1) // back
	_, _ = rec.WaitFor(ctx, func(e events.Event) bool { return e.Topic() == (retry.Reconnected{}).Topic() })

	for _, line := range rec.Lines() {
		fmt.Println(line)
	}
	// Output:
	// @0s connected app.1 client
	// @30s heartbeat.sent app.1 #1
	// @30s heartbeat.pong app.1 #1 rtt=0s
	// @1m0s heartbeat.sent app.1 #2
	// @1m10s heartbeat.missed app.1 #2 missed=1
	// @1m10s heartbeat.timeout app.1 missed=1
	// @1m10s disconnected app.1 1006 local
	// @1m10s reconnect.scheduled app #1 in 1s
	// @1m11s reconnect.attempt app #1
	// @1m11s reconnect.scheduled app #2 in 2s
	// @1m13s reconnect.attempt app #2
	// @1m13s connected app.3 client
	// @1m13s reconnect.done app app.3 after 2 down=3s
}
