package tether_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/tethertest"
)

// RateLimited is the rate limiter's own event: how many messages it
// dropped in the window that just ended. Any type with these three methods
// is an event.
type RateLimited struct {
	ConnID  string
	Dropped int
	At      time.Time
}

// Topic names the event in logs and bridges.
func (RateLimited) Topic() string { return "ratelimit.limited" }

// Source is the connection the event is about.
func (e RateLimited) Source() string { return e.ConnID }

// Time is when the window ended, on the connection's clock.
func (e RateLimited) Time() time.Time { return e.At }

// RateLimit is a plugin written with tether's public API only: it lets at
// most Max inbound messages per window of Per through to the application,
// drops the rest, and reports what it dropped at the end of each window.
type RateLimit struct {
	Max int
	Per time.Duration
}

// Attach runs once per connection, when the connection is created.
func (r RateLimit) Attach(h *core.Handle) error {
	if r.Max <= 0 || r.Per <= 0 {
		return fmt.Errorf("%w: RateLimit{%d, %v}", core.ErrInvalidConfig, r.Max, r.Per)
	}
	var (
		mu      sync.Mutex
		count   int
		dropped int
		stopped bool
		t       clockwork.Timer
	)
	endWindow := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		n := dropped
		count, dropped = 0, 0
		t.Reset(r.Per)
		mu.Unlock()
		if n > 0 { // published outside the lock, before the connection's Disconnected
			core.Emit(h, RateLimited{ConnID: h.Conn().ID(), Dropped: n, At: h.Clock().Now()})
		}
	}
	mu.Lock()
	t = h.Clock().AfterFunc(r.Per, endWindow) // the injected clock: tests run it in simulated time
	mu.Unlock()
	if err := h.OnClose(func() { // the connection is closing: stop the timer
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}); err != nil {
		return err
	}
	return h.UseInbound(func(next core.Handler) core.Handler {
		return func(ctx context.Context, m core.Frame) error {
			mu.Lock()
			count++
			over := count > r.Max
			if over {
				dropped++
			}
			mu.Unlock()
			if over {
				return nil // dropped: the application never sees it
			}
			return next(ctx, m)
		}
	})
}

var _ core.Plugin = RateLimit{}

// A third party's plugin on a client: at most 3 messages a second reach
// the handler. The server echoes a burst of 5; the client's handler gets 3,
// and when the window ends the plugin publishes its own event, which a
// typed subscriber and tethertest's recorder both see.
func Example_plugin() {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := tethertest.NewClock(start)
	bus := events.NewBus()
	defer bus.Close()
	clock.Watch(bus)

	limited := make(chan RateLimited, 1)
	_, _ = events.Subscribe(bus, func(e RateLimited) { limited <- e }) // typed: a wrong signature does not compile
	rec, _ := tethertest.NewRecorder(bus, start, tethertest.Topics("ratelimit.limited"))
	defer rec.Close()

	srv, _ := tethertest.NewServer(tether.WithClock(clock), tether.WithoutHeartbeat()) // echoes every message
	defer srv.Close()
	got := make(chan string, 8)
	c, err := tether.Dial(ctx, srv.URL(), srv.DialOption(),
		tether.WithClock(clock), tether.WithBus(bus), tether.WithClientID("app"), tether.WithoutHeartbeat(),
		tether.WithPlugin(RateLimit{Max: 3, Per: time.Second}),
		tether.WithHandler(func(_ context.Context, m tether.Frame) error { got <- string(m.Payload); return nil }),
	)
	if err != nil {
		panic(err)
	}
	defer c.Close(tether.StatusNormalClosure, "")

	for i := range 5 {
		_ = c.SendText(ctx, fmt.Sprintf("m%d", i))
	}
	for range 3 {
		fmt.Println("handler:", <-got)
	}
	_ = clock.Settle(ctx)               // the two other echoes arrived and were dropped
	_ = clock.Step(ctx, time.Second, 1) // the window ends: the plugin's one timer
	e := <-limited
	fmt.Printf("subscriber: %s dropped %d\n", e.ConnID, e.Dropped)
	lines, _ := rec.TakeN(ctx, 1)
	fmt.Println("recorder:", lines[0])
	// Output:
	// handler: m0
	// handler: m1
	// handler: m2
	// subscriber: app.1 dropped 2
	// recorder: @1s ratelimit.limited app.1
}
