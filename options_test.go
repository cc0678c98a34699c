package tether_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/middleware"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInvalidOptions(t *testing.T) {
	cases := map[string]tether.Option{
		"nil clock":      tether.WithClock(nil),
		"nil bus":        tether.WithBus(nil),
		"nil handler":    tether.WithHandler(nil),
		"nil plugin":     tether.WithPlugin(nil),
		"zero limit":     tether.WithMaxMessageSize(0),
		"negative limit": tether.WithMaxMessageSize(-5),
		"zero timeout":   tether.WithCloseTimeout(0),
		"nil option":     nil,
	}
	for name, opt := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := tether.ServerUpgrader(opt); !errors.Is(err, core.ErrInvalidConfig) {
				t.Fatalf("ServerUpgrader: %v, want ErrInvalidConfig", err)
			}
			if _, err := tether.NewServer(opt); !errors.Is(err, core.ErrInvalidConfig) {
				t.Fatalf("NewServer: %v, want ErrInvalidConfig", err)
			}
			if _, err := tether.Dial(testCtx(t), "ws://127.0.0.1:1/", opt); !errors.Is(err, core.ErrInvalidConfig) {
				t.Fatalf("Dial: %v, want ErrInvalidConfig", err)
			}
		})
	}
	for name, opt := range map[string]tether.ServerOption{
		"nil check origin":  tether.WithCheckOrigin(nil),
		"nil server option": nil,
	} {
		if _, err := tether.NewServer(opt); !errors.Is(err, core.ErrInvalidConfig) {
			t.Errorf("%s: NewServer: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// The options push one clock and one bus into every module: a plugin on a
// served connection sees exactly the clock and bus given to the options,
// and middlewares from several options keep their order.
func TestOptionsReachEveryModule(t *testing.T) {
	clock := clockwork.NewFakeClock()
	bus := events.NewBus()
	defer bus.Close()
	type seen struct {
		clock clockwork.Clock
		bus   *events.Bus
	}
	got := make(chan seen, 1)
	probe := core.PluginFunc(func(h *core.Handle) error {
		got <- seen{h.Clock(), h.Bus()}
		return nil
	})
	var order []string
	mark := func(name string) core.Middleware {
		return func(next core.Handler) core.Handler {
			return func(ctx context.Context, f core.Frame) error {
				order = append(order, name)
				return next(ctx, f)
			}
		}
	}
	handled := make(chan struct{}, 1)
	h, err := tether.NewServer(
		tether.WithClock(clock), tether.WithBus(bus), tether.WithPlugin(probe),
		tether.WithMiddleware(middleware.Recover(), mark("a")),
		tether.WithMiddleware(mark("b")),
		tether.WithHandler(func(context.Context, core.Frame) error { handled <- struct{}{}; return nil }),
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := core.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(context.Background()) }()
	s := <-got
	if s.clock != clockwork.Clock(clock) || s.bus != bus {
		t.Fatalf("plugin saw clock %v bus %p; want the injected ones", s.clock, s.bus)
	}
	if err := c.WriteText(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	<-handled
	if strings.Join(order, ",") != "a,b" {
		t.Fatalf("middleware order %v, want a,b", order)
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := h.Shutdown(testCtx(t), ws.StatusGoingAway, ""); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultClockIsReal(t *testing.T) {
	up, err := tether.ServerUpgrader()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(up.Config.Clock.Now()); d < -time.Minute || d > time.Minute {
		t.Fatalf("default clock is %v away from the wall clock", d)
	}
}

// heartbeats returns the heartbeat plugins among ps.
func heartbeats(ps []core.Plugin) []*heartbeat.Heartbeat {
	var hbs []*heartbeat.Heartbeat
	for _, p := range ps {
		if h, ok := p.(*heartbeat.Heartbeat); ok {
			hbs = append(hbs, h)
		}
	}
	return hbs
}

// The heartbeat is on by default, on both sides, with the recipe's 30 s
// and 10 s, and first among the plugins (nearest the wire). WithHeartbeat
// replaces it rather than running two on every connection, and
// WithoutHeartbeat turns it off; the last of them wins.
func TestHeartbeatOnByDefault(t *testing.T) {
	other := core.PluginFunc(func(*core.Handle) error { return nil })
	mine, err := heartbeat.New(heartbeat.Config{Interval: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		opts     []tether.ServerOption
		interval time.Duration // 0: no heartbeat
	}{
		"default":         {nil, heartbeat.DefaultInterval},
		"replaced":        {[]tether.ServerOption{tether.WithHeartbeat(heartbeat.Config{Interval: 20 * time.Second}), tether.WithPlugin(other), tether.WithHeartbeat(heartbeat.Config{Interval: 5 * time.Second})}, 5 * time.Second},
		"off":             {[]tether.ServerOption{tether.WithPlugin(other), tether.WithoutHeartbeat()}, 0},
		"off then on":     {[]tether.ServerOption{tether.WithoutHeartbeat(), tether.WithHeartbeat(heartbeat.Config{Interval: time.Minute})}, time.Minute},
		"on then off":     {[]tether.ServerOption{tether.WithHeartbeat(heartbeat.Config{Interval: time.Minute}), tether.WithoutHeartbeat()}, 0},
		"with a plugin":   {[]tether.ServerOption{tether.WithPlugin(other)}, heartbeat.DefaultInterval},
		"timeout default": {[]tether.ServerOption{tether.WithHeartbeat(heartbeat.Config{Timeout: heartbeat.DefaultTimeout})}, heartbeat.DefaultInterval},
		"as a plugin":     {[]tether.ServerOption{tether.WithPlugin(mine)}, 7 * time.Second}, // replaces the default: never two
		"plugin then off": {[]tether.ServerOption{tether.WithPlugin(mine), tether.WithoutHeartbeat()}, 0},
		"plugin then on":  {[]tether.ServerOption{tether.WithPlugin(mine), tether.WithHeartbeat(heartbeat.Config{Interval: time.Minute})}, time.Minute},
		"on then plugin":  {[]tether.ServerOption{tether.WithHeartbeat(heartbeat.Config{Interval: time.Minute}), tether.WithPlugin(other, mine)}, 7 * time.Second},
	} {
		up, err := tether.ServerUpgrader(tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		hbs := heartbeats(up.Config.Plugins)
		switch {
		case tc.interval == 0 && len(hbs) != 0:
			t.Errorf("%s: %d heartbeats, want none", name, len(hbs))
		case tc.interval != 0 && (len(hbs) != 1 || up.Config.Plugins[0] != core.Plugin(hbs[0])):
			t.Errorf("%s: plugins %v, want one heartbeat, first", name, up.Config.Plugins)
		case tc.interval != 0 && (hbs[0].Config().Interval != tc.interval || hbs[0].Config().Timeout != min(heartbeat.DefaultTimeout, tc.interval)):
			t.Errorf("%s: heartbeat %+v, want interval %v", name, hbs[0].Config(), tc.interval)
		}
	}
}

// Every connection of Dial and NewServer recovers a handler's panic
// (core.Config.OnPanic, whose cost per message core's tests hold to no
// allocation), and the chain they get allocates nothing per message.
func TestFacadeChainAllocatesNothingPerFrame(t *testing.T) {
	up, err := tether.ServerUpgrader(tether.WithMiddleware(middleware.Recover()))
	if err != nil {
		t.Fatal(err)
	}
	if up.Config.OnPanic == nil {
		t.Fatal("the facade does not recover panics")
	}
	h := up.Config.Inbound.Then(func(context.Context, core.Frame) error { return nil })
	ctx := context.Background()
	f := core.Frame{Op: ws.OpText, Payload: []byte("hello")}
	if n := testing.AllocsPerRun(1000, func() { _ = h(ctx, f) }); n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}
