package middleware_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/middleware"
)

func TestPingLimitRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		max int
		per time.Duration
	}{{0, time.Second}, {-1, time.Second}, {1, 0}, {1, -time.Second}} {
		if _, err := middleware.PingLimit(tc.max, tc.per); !errors.Is(err, core.ErrInvalidConfig) {
			t.Errorf("PingLimit(%d, %v): %v", tc.max, tc.per, err)
		}
	}
}

// max pings per window are answered, window after window; one more within
// a window closes the connection with 1008, and that ping is not answered.
func TestPingLimitClosesAFlood(t *testing.T) {
	const max = 10
	clock := clockwork.NewFakeClock()
	limit, err := middleware.PingLimit(max, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The client's plugin counts the pongs it gets, and keeps its handle:
	// sending a ping is a plugin's operation.
	pongs := make(chan struct{}, 100)
	var client *core.Handle
	countPongs := core.PluginFunc(func(h *core.Handle) error {
		client = h
		return h.OnControl(func(op ws.OpCode, _ []byte) {
			if op == ws.OpPong {
				pongs <- struct{}{}
			}
		})
	})
	_, cliErr, srvErr := pair(t, core.Config{Clock: clock, Plugins: []core.Plugin{limit}}, core.Config{Plugins: []core.Plugin{countPongs}})
	ctx := testCtx(t)
	ping := func(n int) {
		t.Helper()
		for range n {
			if err := client.Ping(ctx, []byte("p")); err != nil {
				t.Fatal(err)
			}
		}
	}
	awaitPongs := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-pongs:
			case <-time.After(10 * time.Second): // wall time: hang guard only
				t.Fatal("a ping went unanswered")
			}
		}
	}
	for window := range 3 {
		ping(max)
		awaitPongs(max)
		// The plugin's window timer, then the next window.
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if err := clock.BlockUntilContext(ctx, 1); err != nil { // re-armed: the count was reset
			t.Fatal(err)
		}
		t.Logf("window %d: %d pings answered", window, max)
	}
	ping(max + 1)
	awaitPongs(max)
	err = wait(t, cliErr)
	if ce := core.CloseStatus(err); ce != ws.StatusPolicyViolation {
		t.Fatalf("client saw %v, want 1008", err)
	}
	if err := wait(t, srvErr); core.CloseStatus(err) != ws.StatusPolicyViolation {
		t.Fatalf("server cause %v", err)
	}
	select {
	case <-pongs:
		t.Fatal("the ping over the limit was answered")
	default:
	}
}
