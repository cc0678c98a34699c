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
			if _, err := tether.NewConfig(opt); !errors.Is(err, core.ErrInvalidConfig) {
				t.Fatalf("NewConfig: %v, want ErrInvalidConfig", err)
			}
			if _, err := tether.Handler(opt); !errors.Is(err, core.ErrInvalidConfig) {
				t.Fatalf("Handler: %v, want ErrInvalidConfig", err)
			}
		})
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
	probe := core.PluginFunc(func(_ context.Context, c *core.Conn) error {
		got <- seen{c.Clock(), c.Bus()}
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
	h, err := tether.Handler(
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
}

func TestDefaultClockIsReal(t *testing.T) {
	cfg, err := tether.NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(cfg.Clock.Now()); d < -time.Minute || d > time.Minute {
		t.Fatalf("default clock is %v away from the wall clock", d)
	}
}

// WithHeartbeat adds one heartbeat plugin; a second WithHeartbeat replaces
// it rather than running two heartbeats on every connection.
func TestWithHeartbeatReplaces(t *testing.T) {
	cfg, err := tether.NewConfig(
		tether.WithHeartbeat(heartbeat.Config{Interval: 20 * time.Second}),
		tether.WithPlugin(core.PluginFunc(func(context.Context, *core.Conn) error { return nil })),
		tether.WithHeartbeat(heartbeat.Config{Interval: 5 * time.Second}),
	)
	if err != nil {
		t.Fatal(err)
	}
	var hbs []*heartbeat.Heartbeat
	for _, p := range cfg.Plugins {
		if h, ok := p.(*heartbeat.Heartbeat); ok {
			hbs = append(hbs, h)
		}
	}
	if len(cfg.Plugins) != 2 || len(hbs) != 1 || hbs[0].Config().Interval != 5*time.Second {
		t.Fatalf("plugins %v", cfg.Plugins)
	}
}
