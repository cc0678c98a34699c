package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// A client that survives its server dropping the connection: it
// reconnects after the recipe's first delay (1 s of simulated time), and
// the message sent while it was down arrives after the reconnect.
func ExampleDial() {
	clock := clockwork.NewFakeClock()
	bus := events.NewBus()
	defer bus.Close()
	timeline := make(chan string, 16)
	start := clock.Now()
	_, _ = events.Subscribe(bus, func(e events.ReconnectScheduled) {
		timeline <- fmt.Sprintf("scheduled attempt %d in %v", e.Attempt, e.Delay)
	})
	_, _ = events.Subscribe(bus, func(e events.Reconnected) {
		timeline <- fmt.Sprintf("reconnected at +%v after %d attempt(s)", e.At.Sub(start), e.Attempts)
	})

	// A server that answers protocol pings, echoes messages, and lets us
	// kill its connections.
	var mu sync.Mutex
	var live []*core.Conn
	grab := core.PluginFunc(func(_ context.Context, c *core.Conn) error {
		mu.Lock()
		live = append(live, c)
		mu.Unlock()
		return nil
	})
	h, _ := tether.Handler(tether.WithPlugin(grab), tether.WithHandler(func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	echoes := make(chan string, 4)
	ctx := context.Background()
	c, err := tether.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"),
		tether.WithClock(clock), tether.WithBus(bus),
		tether.WithHeartbeat(heartbeat.Config{}),
		tether.WithHandler(func(_ context.Context, f core.Frame) error { echoes <- string(f.Payload); return nil }),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = c.SendText(ctx, "first")
	fmt.Println("echo:", <-echoes)

	mu.Lock()
	_ = live[0].Abort(errors.New("server: kill")) // the connection dies without a close frame
	mu.Unlock()
	fmt.Println(<-timeline)
	_ = c.SendText(ctx, "sent while down") // queued
	_ = clock.BlockUntilContext(ctx, 1)    // the client waits on the clock
	clock.Advance(time.Second)
	fmt.Println(<-timeline)
	fmt.Println("echo:", <-echoes)

	_ = c.Close(ws.StatusNormalClosure, "bye")
	fmt.Println("ended:", c.Err())
	// Output:
	// echo: first
	// scheduled attempt 1 in 1s
	// reconnected at +1s after 1 attempt(s)
	// echo: sent while down
	// ended: tether: client closed by Close
}
