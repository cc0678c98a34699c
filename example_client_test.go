package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
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
	_, _ = events.Subscribe(bus, func(e retry.Scheduled) {
		timeline <- fmt.Sprintf("scheduled attempt %d in %v", e.Attempt, e.Delay)
	})
	_, _ = events.Subscribe(bus, func(e retry.Reconnected) {
		timeline <- fmt.Sprintf("reconnected at +%v after %d attempt(s)", e.At.Sub(start), e.Attempts)
	})

	// A server that echoes messages, with a plugin of our own that keeps
	// each connection's handle, so that we can kill the connection.
	var mu sync.Mutex
	var live []*core.Handle
	grab := core.PluginFunc(func(h *core.Handle) error {
		mu.Lock()
		live = append(live, h)
		mu.Unlock()
		return nil
	})
	srv, _ := tether.NewServer(tether.WithPlugin(grab), tether.WithHandler(func(ctx context.Context, f tether.Frame) error {
		return tether.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}))
	hs := httptest.NewServer(srv)
	defer hs.Close()

	echoes := make(chan string, 4)
	ctx := context.Background()
	c, err := tether.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"),
		tether.WithClock(clock), tether.WithBus(bus),
		tether.WithHandler(func(_ context.Context, f tether.Frame) error { echoes <- string(f.Payload); return nil }),
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

	err = c.Shutdown(ctx, tether.StatusNormalClosure, "bye")
	fmt.Println("shutdown:", err, "| ended:", c.Err())
	_ = srv.Shutdown(ctx, tether.StatusGoingAway, "")
	// Output:
	// echo: first
	// scheduled attempt 1 in 1s
	// reconnected at +1s after 1 attempt(s)
	// echo: sent while down
	// shutdown: <nil> | ended: tether: client closed by Close
}
