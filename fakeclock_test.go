package tether_test

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// The whole stack on a fake clock: a server built with tether.Handler and
// one clock closes a connection whose peer never answers the close frame,
// after exactly the configured close timeout of simulated time, and the
// Disconnected event carries the simulated timestamp. No wall-clock wait.
//
// (The heartbeat's 30 s and the retry's 1-2-4-8-16 s schedule will run here
// the same way once those plugins land.)
func TestCloseTimeoutEndToEndOnFakeClock(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	bus := events.NewBus()
	defer bus.Close()
	disconnected := make(chan events.Disconnected, 1)
	unsub, err := events.Subscribe(bus, func(e events.Disconnected) { disconnected <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	conns := make(chan *core.Conn, 1)
	grab := core.PluginFunc(func(_ context.Context, c *core.Conn) error { conns <- c; return nil })
	h, err := tether.Handler(tether.WithClock(clock), tether.WithBus(bus), tether.WithPlugin(grab),
		tether.WithCloseTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// A raw client that completes the handshake, then never reads again.
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	u, _ := core.ParseURL(strings.Replace(srv.URL, "http", "ws", 1))
	if _, _, err := (ws.Dialer{}).Upgrade(nc, u); err != nil {
		t.Fatal(err)
	}
	sc := <-conns

	closed := make(chan error, 1)
	go func() { closed <- sc.Close(ws.StatusGoingAway, "maintenance") }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // wall time: hang guard only
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30*time.Second - time.Millisecond)
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // still armed just before 30 s
		t.Fatalf("the close timer fired early: %v", err)
	}
	clock.Advance(time.Millisecond)
	if err := <-closed; !errors.Is(err, core.ErrCloseTimeout) {
		t.Fatalf("Close = %v, want ErrCloseTimeout", err)
	}
	e := <-disconnected
	if e.Code != ws.StatusGoingAway || e.Remote || !e.At.Equal(start.Add(30*time.Second)) {
		t.Fatalf("Disconnected %+v, want local 1001 at start+30s", e)
	}
	if !errors.Is(e.Err, core.ErrCloseTimeout) {
		t.Fatalf("Disconnected.Err = %v", e.Err)
	}
}
