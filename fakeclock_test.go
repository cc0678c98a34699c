package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
	"github.com/tetherws/tether/tethertest"
)

// The whole stack on a fake clock: a server built with tether.NewServer
// and one clock closes a connection whose peer never answers the close
// frame after exactly the configured close timeout of simulated time:
// Close returns at once, Done closes at the timeout, and the Disconnected
// event carries the simulated timestamp. No wall-clock wait.
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

	serving := make(chan *core.Conn, 1)
	h, err := tether.NewServer(tether.WithClock(clock), tether.WithBus(bus),
		tether.WithHandler(func(ctx context.Context, _ core.Frame) error { serving <- core.FromContext(ctx); return nil }),
		tether.WithCloseTimeout(30*time.Second), tether.WithoutHeartbeat()) // the close timer is the only one
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
	// One message, so that the server's read loop is known to run (a Close
	// before Serve would release the socket at once instead).
	if err := ws.WriteFrame(nc, ws.MaskFrame(ws.NewTextFrame([]byte("hi")))); err != nil {
		t.Fatal(err)
	}
	sc := <-serving

	if err := sc.Close(ws.StatusGoingAway, "maintenance"); err != nil { // starts the close, returns at once
		t.Fatalf("Close = %v", err)
	}
	if err := sc.Close(ws.StatusGoingAway, "again"); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	ctx := testCtx(t)
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30*time.Second - time.Millisecond)
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // still armed just before 30 s
		t.Fatalf("the close timer fired early: %v", err)
	}
	select {
	case <-sc.Done():
		t.Fatal("the connection ended before the close timeout")
	default:
	}
	clock.Advance(time.Millisecond)
	select {
	case <-sc.Done():
	case <-ctx.Done():
		t.Fatal("the connection did not end at the close timeout")
	}
	if err := sc.Err(); !errors.Is(err, core.ErrCloseTimeout) || core.CloseStatus(err) != ws.StatusGoingAway {
		t.Fatalf("Err() = %v, want 1001 with ErrCloseTimeout", err)
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
	if _, err := events.Subscribe(s.bus, func(e heartbeat.PongReceived) { pongs <- e.At.Sub(t0) }); err != nil {
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
	if st, ok := heartbeat.StatsOf(c.Conn()); !ok || st.Answered != 2 || st.RTT != 0 { // simulated time stands still between ping and pong
		t.Fatalf("StatsOf = %+v, %v", st, ok)
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

// story is the recipe's world on a tethertest.Clock: an in-memory server
// that answers pings (its own heartbeat off), and one client "k" with the
// default heartbeat (30 s, pong within 10 s) and retry (1, 2, 4, 8, 16 s,
// five attempts). The client's events are recorded; the server publishes
// none, so the sequence is the client's alone and exact.
type story struct {
	t     *testing.T
	ctx   context.Context
	clock *tethertest.Clock
	srv   *tethertest.Server
	bus   *events.Bus
	rec   *tethertest.Recorder
	c     *tether.Client
}

func newStory(t *testing.T, opts ...tether.DialOption) *story {
	t.Helper()
	s := &story{t: t, ctx: testCtx(t), clock: tethertest.NewClock(t0), bus: events.NewBus()}
	t.Cleanup(s.bus.Close)
	s.clock.Watch(s.bus)
	srv, err := tethertest.NewServer(tether.WithClock(s.clock), tether.WithoutHeartbeat())
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	t.Cleanup(func() { _ = srv.Close() })
	lifecycle := tethertest.Keep(func(e events.Event) bool { // messages are checked at the server
		switch e.(type) {
		case events.MessageIn, events.MessageOut:
			return false
		}
		return true
	})
	if s.rec, err = tethertest.NewRecorder(s.bus, t0, lifecycle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.rec.Close)
	opts = append([]tether.DialOption{srv.DialOption(), tether.WithClock(s.clock), tether.WithBus(s.bus),
		tether.WithClientID("k")}, opts...) // the heartbeat is on by default
	if s.c, err = tether.Dial(s.ctx, srv.URL(), opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.c.Close(ws.StatusNormalClosure, "") })
	return s
}

// step advances the clock by d; see tethertest.Clock.Step.
func (s *story) step(d time.Duration, holders int) {
	s.t.Helper()
	if err := s.clock.Step(s.ctx, d, holders); err != nil {
		s.t.Fatal(err)
	}
}

// expect checks the next events recorded, line by line.
func (s *story) expect(want ...string) {
	s.t.Helper()
	if got, err := s.rec.TakeN(s.ctx, len(want)); err != nil || !slices.Equal(got, want) {
		s.t.Fatalf("events:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// quiet checks that nothing else was recorded once all is at rest.
func (s *story) quiet() {
	s.t.Helper()
	if err := s.clock.Settle(s.ctx); err != nil {
		s.t.Fatal(err)
	}
	if extra := s.rec.Take(); len(extra) > 0 {
		s.t.Fatalf("unexpected events:\n\t%s", strings.Join(extra, "\n\t"))
	}
}

// The recipe's story, exactly: pings at 30, 60 and 90 s answered; the
// peer black-holed; the ping at 2m00s unanswered and the connection
// declared dead at 2m10s; attempts 1, 2, 4, 8 and 16 s apart against a
// server that refuses (503); the give-up after the fifth. Every event and
// its simulated time is asserted.
func TestRecipeStoryOnFakeClock(t *testing.T) {
	s := newStory(t)
	s.step(0, 1)
	s.expect("@0s connected k.1 client")
	for i, at := range []string{"30s", "1m0s", "1m30s"} {
		s.step(30*time.Second, 1)
		s.expect(fmt.Sprintf("@%s heartbeat.sent k.1 #%d", at, i+1), fmt.Sprintf("@%s heartbeat.pong k.1 #%d rtt=0s", at, i+1))
	}
	s.srv.BlackHole(tethertest.Both)
	s.step(30*time.Second, 1)
	s.expect("@2m0s heartbeat.sent k.1 #4")
	s.step(10*time.Second, 1)
	s.expect(
		"@2m10s heartbeat.missed k.1 #4 missed=1",
		"@2m10s heartbeat.timeout k.1 missed=1",
		"@2m10s error k.1 fatal=true",
		"@2m10s disconnected k.1 1006 local",
		"@2m10s reconnect.scheduled k #1 in 1s",
	)
	s.srv.BlackHole(0)
	if err := s.srv.Refuse(http.StatusServiceUnavailable, -1); err != nil {
		t.Fatal(err)
	}
	// One step per attempt: the retry loop wakes on a channel timer and
	// works untracked until its next event, so each step goes to the next
	// timer and the test waits for the events before stepping on.
	for i, step := range []struct {
		delay time.Duration
		at    string
	}{{time.Second, "2m11s"}, {2 * time.Second, "2m13s"}, {4 * time.Second, "2m17s"}, {8 * time.Second, "2m25s"}} {
		s.step(step.delay, 1)
		s.expect(fmt.Sprintf("@%s reconnect.attempt k #%d", step.at, i+1), fmt.Sprintf("@%s reconnect.scheduled k #%d in %v", step.at, i+2, 2*step.delay))
	}
	s.step(16*time.Second, 1)
	s.expect("@2m41s reconnect.attempt k #5", "@2m41s reconnect.gaveup k after 5")
	<-s.c.Done()
	s.quiet()
	if err := s.c.Err(); !errors.Is(err, retry.ErrGaveUp) {
		t.Fatalf("Err() = %v, want ErrGaveUp", err)
	}
	var he *core.HandshakeError
	if !errors.As(s.c.Err(), &he) || he.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Err() = %v, want the 503 as the last error", s.c.Err())
	}
	if st := s.srv.Stats(); st.Refused != 5 || st.Accepted != 1 {
		t.Fatalf("server stats %+v, want 5 refused and 1 accepted", st)
	}
}

// Recovery: the server comes back during the backoff. The client
// reconnects at the third attempt, its counter resets, and the next outage
// starts again at 1 s.
func TestRecoveryResetsTheCounterOnFakeClock(t *testing.T) {
	s := newStory(t)
	s.step(0, 1)
	s.expect("@0s connected k.1 client")
	if err := s.srv.Refuse(http.StatusServiceUnavailable, 2); err != nil { // down for two attempts
		t.Fatal(err)
	}
	s.srv.Drop()
	s.step(0, 1)
	s.expect("@0s disconnected k.1 1006 local", "@0s reconnect.scheduled k #1 in 1s")
	s.step(time.Second, 1)
	s.expect("@1s reconnect.attempt k #1", "@1s reconnect.scheduled k #2 in 2s")
	s.step(2*time.Second, 1)
	s.expect("@3s reconnect.attempt k #2", "@3s reconnect.scheduled k #3 in 4s")
	s.step(4*time.Second, 1)
	s.expect("@7s reconnect.attempt k #3", "@7s connected k.4 client", "@7s reconnect.done k k.4 after 3 down=7s")
	s.step(30*time.Second, 1) // the new connection's heartbeat runs
	s.expect("@37s heartbeat.sent k.4 #1", "@37s heartbeat.pong k.4 #1 rtt=0s")
	s.srv.CloseAll(ws.StatusGoingAway, "restart") // the next outage: a clean close this time
	s.step(0, 1)
	s.expect("@37s disconnected k.4 1001 remote", "@37s reconnect.scheduled k #1 in 1s")
	s.step(time.Second, 1)
	s.expect("@38s reconnect.attempt k #1", "@38s connected k.5 client", "@38s reconnect.done k k.5 after 1 down=1s")
	s.quiet()
}

// Messages sent during the outage are queued, then delivered once and in
// order after the reconnect hook has run (which re-authenticates first).
func TestQueuedMessagesAfterTheHookOnFakeClock(t *testing.T) {
	var hookRuns int
	s := newStory(t, tether.WithOnReconnect(func(ctx context.Context, conn *core.Conn) error {
		hookRuns++
		return conn.WriteText(ctx, fmt.Sprintf("auth %d", hookRuns))
	}))
	s.step(0, 1)
	if err := s.c.SendText(s.ctx, "before"); err != nil {
		t.Fatal(err)
	}
	s.step(0, 1) // delivered before the drop: a drop loses what is in flight, as TCP does
	s.srv.Drop()
	// Wait for the events that show the client has reacted: a step taken
	// before the client armed its retry timer could jump over it.
	s.expect("@0s connected k.1 client", "@0s disconnected k.1 1006 local", "@0s reconnect.scheduled k #1 in 1s")
	const n = 20
	for i := range n {
		if err := s.c.SendText(s.ctx, fmt.Sprintf("m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if q := s.c.Queued(); q != n {
		t.Fatalf("Queued() = %d while down, want %d", q, n)
	}
	s.step(time.Second, 1)
	want := []string{"before", "auth 1"}
	for i := range n {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	for _, w := range want {
		f, err := s.srv.Next(s.ctx)
		if err != nil || string(f.Payload) != w {
			t.Fatalf("server received %q (%v), want %q", f.Payload, err, w)
		}
	}
	if err := s.clock.Settle(s.ctx); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(s.ctx)
	cancel()
	if f, err := s.srv.Next(done); err == nil { // exactly once: nothing more arrived
		t.Fatalf("server received %q more", f.Payload)
	}
	if q, u := s.c.Queued(), len(s.c.Unsent()); q != 0 || u != 0 {
		t.Fatalf("Queued %d, Unsent %d after the flush", q, u)
	}
}

// A day in simulated time: a pong every 30 s, and every hour an outage
// (the connection dropped, the server refusing two handshakes), after
// which the client is back 7 s later (1+2+4 s). The counts are exact: any
// false timeout, lost ping or extra reconnect changes them. The wall time
// is logged; goleak checks that nothing is left behind.
func TestSoak24HoursOnFakeClock(t *testing.T) {
	began := time.Now() // wall time: measured for the log, not asserted
	s := newStory(t)
	var pongs, timeouts, reconnects, attempts int
	count := func(n *int) func() { return func() { *n++ } }
	subscribe(t, s.bus, func(heartbeat.PongReceived) { count(&pongs)() })
	subscribe(t, s.bus, func(heartbeat.Timeout) { count(&timeouts)() })
	subscribe(t, s.bus, func(retry.Reconnected) { count(&reconnects)() })
	subscribe(t, s.bus, func(retry.Dialing) { count(&attempts)() })
	// A day of heartbeat lines is not needed (the counters say it): the
	// recorder keeps what the test waits for between steps.
	s.rec.Close()
	var err error
	if s.rec, err = tethertest.NewRecorder(s.bus, t0, tethertest.Topics(retry.Scheduled{}.Topic(), retry.Reconnected{}.Topic())); err != nil {
		t.Fatal(err)
	}
	next := func(what string) {
		t.Helper()
		got, err := s.rec.TakeN(s.ctx, 1)
		if err != nil || !strings.Contains(got[0], what) {
			t.Fatalf("event %q (%v), want %s", got, err, what)
		}
	}

	s.step(time.Hour, 1) // pings at 30 s ... 1h, all answered
	for range 23 {
		if err := s.srv.Refuse(http.StatusServiceUnavailable, 2); err != nil {
			t.Fatal(err)
		}
		s.srv.Drop()
		for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} { // refused, refused, connected at 7 s
			next("reconnect.scheduled")
			s.step(d, 1)
		}
		next("reconnect.done")
		s.step(time.Hour-7*time.Second, 1) // 119 pings, the last 23 s before the next outage
	}
	if err := s.clock.Settle(s.ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.clock.Since(t0); got != 24*time.Hour {
		t.Fatalf("simulated %v, want 24h", got)
	}
	if pongs != 120+23*119 || timeouts != 0 || reconnects != 23 || attempts != 3*23 {
		t.Fatalf("pongs %d, timeouts %d, reconnects %d, attempts %d; want %d, 0, 23, 69",
			pongs, timeouts, reconnects, attempts, 120+23*119)
	}
	if st := s.srv.Stats(); st.Live != 1 || st.Accepted != 24 || st.Refused != 46 {
		t.Fatalf("server stats %+v", st)
	}
	t.Logf("24h of simulated time (%d pongs, %d outages) in %v of wall time", pongs, reconnects, time.Since(began)) // wall time: measured, not asserted
}

func subscribe[E events.Event](t *testing.T, bus *events.Bus, fn func(E)) {
	t.Helper()
	unsub, err := events.Subscribe(bus, fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
}

// A reconnect into a network that swallows the handshake does not hang:
// the default handshake timeout (10 s, on the clock) fails the attempt and
// the policy moves on.
func TestReconnectIntoABlackHoleTimesOutOnFakeClock(t *testing.T) {
	s := newStory(t)
	s.step(0, 1)
	s.expect("@0s connected k.1 client")
	s.srv.BlackHole(tethertest.Both)
	s.srv.Drop()
	s.expect("@0s disconnected k.1 1006 local", "@0s reconnect.scheduled k #1 in 1s")
	s.step(time.Second, 1)
	s.expect("@1s reconnect.attempt k #1")
	s.step(10*time.Second, 1) // the handshake is swallowed; its timeout is the only timer
	s.expect("@11s reconnect.scheduled k #2 in 2s")
	s.srv.BlackHole(0)
	s.step(2*time.Second, 1)
	s.expect("@13s reconnect.attempt k #2", "@13s connected k.3 client", "@13s reconnect.done k k.3 after 2 down=13s")
	s.quiet()
}
