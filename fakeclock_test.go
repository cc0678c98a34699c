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
	"github.com/tetherws/tether/heartbeat"
)

// The whole stack on a fake clock: a server built with tether.Handler and
// one clock closes a connection whose peer never answers the close frame,
// after exactly the configured close timeout of simulated time, and the
// Disconnected event carries the simulated timestamp. No wall-clock wait.
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

// The recipe on a fake clock, end to end: a client with the default
// heartbeat and retry. Pings at 30 s and 60 s are answered; the server
// drops the connection at 70 s; the client reconnects 1 s later to a
// server that has stopped answering; its ping at 1m41s goes unanswered, the
// connection is declared dead at 1m51s, and the client reconnects again
// 1 s later. Minutes of simulated time, no wall-clock wait.
func TestHeartbeatTimeoutThenReconnectOnFakeClock(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	pongs := make(chan time.Duration, 8)
	if _, err := events.Subscribe(s.bus, func(e events.PongReceived) { pongs <- e.At.Sub(t0) }); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, b.url(), tether.WithHeartbeat(heartbeat.Config{}))
	s.rec.expect("connected k.1 @0s")
	for _, step := range []struct{ wait, at time.Duration }{{30 * time.Second, 30 * time.Second}, {20 * time.Second, time.Minute}} {
		s.wait(step.wait) // to the ping
		select {
		case got := <-pongs:
			if got != step.at {
				t.Fatalf("pong at %v, want %v", got, step.at)
			}
		case <-time.After(testTimeout): // wall time: hang guard only
			t.Fatalf("no pong for the ping at %v", step.at)
		}
		s.wait(10 * time.Second) // the timeout check: answered
	}
	if rtt, ok := c.RTT(); !ok || rtt != 0 { // simulated time stands still between ping and pong
		t.Fatalf("RTT() = %v, %v", rtt, ok)
	}
	b.set(0, true) // from now on the server never reads
	b.drop()
	s.rec.expect("disconnected k.1 1006 @1m10s")
	s.rec.expect("scheduled #1 in 1s @1m10s")
	s.wait(time.Second)
	s.rec.expect("attempt #1 @1m11s")
	s.rec.expect("connected k.2 @1m11s")
	s.rec.expect("reconnected k.2 after 1, down 1s @1m11s")
	s.wait(30 * time.Second) // ping at 1m41s, never answered
	s.wait(10 * time.Second) // declared dead at 1m51s
	s.rec.expect("heartbeat timeout k.2 @1m51s")
	s.rec.expect("disconnected k.2 1006 @1m51s")
	s.rec.expect("scheduled #1 in 1s @1m51s")
	b.set(0, false)
	s.wait(time.Second)
	s.rec.expect("attempt #1 @1m52s")
	s.rec.expect("connected k.3 @1m52s")
	s.rec.expect("reconnected k.3 after 1, down 1s @1m52s")
	if c.Err() != nil {
		t.Fatalf("client ended: %v", c.Err())
	}
}
