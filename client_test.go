package tether_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// dial dials url with the sim's clock and bus, and without the heartbeat
// unless opts turn it on (its timer would share the fake clock with the
// reconnect waits these tests step through).
func dial(t *testing.T, s *sim, url string, opts ...tether.DialOption) *tether.Client {
	t.Helper()
	opts = append([]tether.DialOption{tether.WithClock(s.clock), tether.WithBus(s.bus), tether.WithClientID("k"), tether.WithoutHeartbeat()}, opts...)
	c, err := tether.Dial(testCtx(t), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, c) })
	return c
}

// shutdown closes c and waits for its end, bounded: a client whose close
// needs the fake clock to move fails the test instead of hanging it.
func shutdown(t *testing.T, c *tether.Client) {
	t.Helper()
	_ = c.Close(ws.StatusNormalClosure, "")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout) // wall time: a guard against hangs, never reached when tests pass
	defer cancel()
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Errorf("client %s did not end after Close (state %v)", c.ID(), c.State())
	}
}

// The recipe's schedule against a server that refuses every handshake:
// attempts at 1, 3, 7, 15 and 31 s (waits of 1, 2, 4, 8, 16 s), then the
// give-up event after the fifth, and the client ends with it.
func TestClientDefaultScheduleThenGiveUp(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1 @0s")
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.1 1006 @0s")
	at := time.Duration(0)
	for i, d := range []time.Duration{1, 2, 4, 8, 16} {
		n := strconv.Itoa(i + 1)
		s.rec.expect("scheduled #" + n + " in " + (d * time.Second).String() + " @" + at.String())
		s.wait(d*time.Second - time.Nanosecond)
		s.rec.quiet(s.bus) // not a nanosecond early
		s.clock.Advance(time.Nanosecond)
		at += d * time.Second
		s.rec.expect("attempt #" + n + " @" + at.String())
	}
	s.rec.expect("gave up after 5 @31s: tether: handshake refused with HTTP 503")
	<-c.Done()
	err := c.Err()
	var gu *retry.GaveUpError
	var he *core.HandshakeError
	if !errors.As(err, &gu) || gu.Attempts != 5 || !errors.As(err, &he) || he.StatusCode != 503 {
		t.Fatalf("Err() = %v", err)
	}
	if got := b.handshakes(); got != 6 {
		t.Fatalf("%d handshakes, want 1 + 5 attempts", got)
	}
	if err := c.SendText(testCtx(t), "late"); !errors.Is(err, core.ErrClosed) || !errors.Is(err, retry.ErrGaveUp) {
		t.Fatalf("Send after give-up: %v", err)
	}
	s.rec.quiet(s.bus)
}

// Success resets the counter: the next outage starts again at 1 s.
func TestClientCounterResetsAfterSuccess(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	dial(t, s, b.url())
	s.rec.expect("connected k.1 @0s")
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.1 1006")
	s.rec.expect("scheduled #1 in 1s @0s")
	s.wait(time.Second)
	s.rec.expect("attempt #1 @1s")
	s.rec.expect("scheduled #2 in 2s @1s")
	b.set(0, false) // the server is back
	s.wait(2 * time.Second)
	s.rec.expect("attempt #2 @3s")
	s.rec.expect("connected k.3 @3s")
	s.rec.expect("reconnected k.3 after 2, down 3s @3s")
	b.drop()
	s.rec.expect("disconnected k.3 1006 @3s")
	s.rec.expect("scheduled #1 in 1s @3s") // reset
	s.wait(time.Second)
	s.rec.expect("attempt #1 @4s")
	s.rec.expect("connected k.4 @4s")
	s.rec.expect("reconnected k.4 after 1, down 1s @4s")
	s.rec.quiet(s.bus)
}

// With a stable-uptime requirement, a connection that drops too soon does
// not reset the counter.
func TestClientStableAfter(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	p, err := retry.New(retry.WithStableAfter(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dial(t, s, b.url(), tether.WithRetry(p))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1 in 1s @0s")
	s.wait(time.Second)
	s.rec.expect("attempt #1 @1s")
	s.rec.expect("connected k.2 @1s")
	s.rec.expect("reconnected k.2 after 1")
	b.drop() // up for less than 10 s
	s.rec.expect("disconnected k.2")
	s.rec.expect("scheduled #2 in 2s @1s")
	s.wait(2 * time.Second)
	s.rec.expect("attempt #2 @3s")
	s.rec.expect("connected k.3 @3s")
	s.rec.expect("reconnected k.3 after 2")
	s.clock.Advance(10 * time.Second) // stable now
	b.drop()
	s.rec.expect("disconnected k.3")
	s.rec.expect("scheduled #1 in 1s @13s")
}

// The user's own Close never triggers a reconnect, whether the client is
// connected or waiting to reconnect.
func TestClientCloseNeverReconnects(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1")
	if err := c.Close(ws.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s.rec.expect("disconnected k.1 1000")
	<-c.Done()
	if !errors.Is(c.Err(), tether.ErrClientClosed) || !errors.Is(c.Err(), core.ErrClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
	if err := c.Close(ws.StatusNormalClosure, ""); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	s.rec.quiet(s.bus)

	// Closed while waiting to reconnect: no attempt, no give-up event.
	c2 := dial(t, s, b.url(), tether.WithClientID("k2"))
	s.rec.expect("connected k2.1")
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k2.1")
	s.rec.expect("scheduled #1 in 1s")
	if err := c2.SendText(testCtx(t), "never sent"); err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(ws.StatusNormalClosure, ""); err != nil { // starts the close
		t.Fatalf("Close: %v", err)
	}
	if err := c2.Shutdown(testCtx(t), ws.StatusNormalClosure, ""); !errors.Is(err, tether.ErrUnsent) || errors.Is(err, retry.ErrGaveUp) {
		t.Fatalf("Shutdown with a queued message: %v", err)
	}
	if u := c2.Unsent(); len(u) != 1 || string(u[0].Payload) != "never sent" {
		t.Fatalf("Unsent() = %v", u)
	}
	s.clock.Advance(time.Minute)
	s.rec.quiet(s.bus)
	if err := c2.SendText(testCtx(t), "x"); !errors.Is(err, tether.ErrClientClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// A close code or handshake status that the classifier refuses ends the
// client at once: no attempt.
func TestClientGivesUpOnPermanentErrors(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1")
	b.closeAll(ws.StatusPolicyViolation, "banned")
	s.rec.expect("disconnected k.1 1008")
	s.rec.expect("gave up after 0 @0s")
	<-c.Done()
	if !errors.Is(c.Err(), retry.ErrGaveUp) || core.CloseStatus(c.Err()) != ws.StatusPolicyViolation {
		t.Fatalf("Err() = %v", c.Err())
	}

	// 401 at a reconnect attempt: the credential will not get better.
	c = dial(t, s, b.url(), tether.WithClientID("k2"))
	s.rec.expect("connected k2.1")
	b.set(http.StatusUnauthorized, false)
	b.drop()
	s.rec.expect("disconnected k2.1")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("gave up after 1 @1s: tether: handshake refused with HTTP 401")
	<-c.Done()
}

// Sends while down are queued in order, bounded in count and bytes; after
// the reconnect, the hook runs first (its message arrives first), then the
// queue, then new sends. Each message arrives once.
func TestClientQueueOrderBoundAndHook(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	hookRan := make(chan struct{}, 4)
	hook := func(ctx context.Context, conn *core.Conn) error {
		hookRan <- struct{}{}
		return conn.WriteText(ctx, "auth")
	}
	c := dial(t, s, b.url(), tether.WithSendBuffer(4, 10), tether.WithOnReconnect(hook))
	s.rec.expect("connected k.1")
	if err := c.SendText(testCtx(t), "before"); err != nil {
		t.Fatal(err)
	}
	if m := b.next(); m != "before" {
		t.Fatalf("server got %q", m)
	}
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	for _, m := range []string{"m1", "m2", "m3"} {
		if err := c.SendText(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SendText(testCtx(t), "toolong!!"); !errors.Is(err, tether.ErrBufferFull) { // 6 + 9 bytes > 10
		t.Fatalf("over the byte bound: %v", err)
	}
	if err := c.SendText(testCtx(t), "m4"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(testCtx(t), "m5"); !errors.Is(err, tether.ErrBufferFull) { // 4 messages
		t.Fatalf("over the count bound: %v", err)
	}
	if c.Queued() != 4 {
		t.Fatalf("%d queued", c.Queued())
	}
	b.set(0, false)
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	s.rec.expect("reconnected k.2 after 1")
	<-hookRan
	var got []string
	for range 5 {
		got = append(got, b.next())
	}
	if err := c.SendText(testCtx(t), "after"); err != nil { // the buffer drained
		t.Fatal(err)
	}
	got = append(got, b.next())
	if want := []string{"auth", "m1", "m2", "m3", "m4", "after"}; !slices.Equal(got, want) {
		t.Fatalf("server got %q, want %q", got, want)
	}
	if c.Queued() != 0 || len(c.Unsent()) != 0 {
		t.Fatalf("queued %d, unsent %v", c.Queued(), c.Unsent())
	}
}

// A heartbeat timeout and a read error at once end the connection once and
// cause one reconnect, not two.
func TestClientDoubleTriggerOneReconnect(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	b.set(0, true) // mute: never answers a ping
	dial(t, s, b.url(), tether.WithHeartbeat(heartbeat.Config{}))
	s.rec.expect("connected k.1")
	s.wait(30 * time.Second) // the ping
	if err := s.clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	b.set(0, false)
	first := b.liveConns()
	go func() { // the socket dies ...
		for _, c := range first {
			b.abort(c, "backend: dropped")
		}
	}()
	s.clock.Advance(10 * time.Second) // ... as the heartbeat times out
	// One of the two causes ends k.1 (which one, and so when, depends on
	// the race): a HeartbeatTimeout may or may not come first, but exactly
	// one Disconnected, one schedule and one reconnect follow.
	ev := s.rec.expect("")
	if strings.HasPrefix(ev, "heartbeat timeout k.1") {
		ev = s.rec.expect("disconnected k.1 1006")
	}
	if !strings.HasPrefix(ev, "disconnected k.1 1006") {
		t.Fatalf("event %q", ev)
	}
	s.rec.expect("scheduled #1 in 1s")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	s.rec.expect("reconnected k.2 after 1")
	s.rec.quiet(s.bus)
	if n := b.handshakes(); n != 2 {
		t.Fatalf("%d handshakes, want 2", n)
	}
}

// The first dial fails fast by default; with WithRetryFirstDial it follows
// the schedule until the server is up.
func TestClientFirstDial(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	b.set(http.StatusServiceUnavailable, false)
	_, err := tether.Dial(testCtx(t), b.url(), tether.WithClock(s.clock))
	var he *core.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 503 {
		t.Fatalf("Dial = %v", err)
	}
	if _, err := tether.Dial(testCtx(t), "ftp://x", tether.WithRetryFirstDial()); !errors.Is(err, core.ErrBadURL) {
		t.Fatalf("bad URL: %v", err)
	}

	type result struct {
		c   *tether.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := tether.Dial(testCtx(t), b.url(), tether.WithClock(s.clock), tether.WithBus(s.bus),
			tether.WithClientID("k"), tether.WithRetryFirstDial())
		done <- result{c, err}
	}()
	s.rec.expect("scheduled #1 in 1s @0s")
	s.wait(time.Second)
	s.rec.expect("attempt #1 @1s")
	s.rec.expect("scheduled #2 in 2s @1s")
	b.set(0, false)
	s.wait(2 * time.Second)
	s.rec.expect("attempt #2 @3s")
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	s.rec.expect("connected k.")
	_ = r.c.Close(ws.StatusNormalClosure, "")
}

// The before-dial hook refreshes credentials for each attempt.
func TestClientBeforeDialRefreshesHeaders(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	base := http.Header{"X-App": {"demo"}}
	dial(t, s, b.url(), tether.WithHeader(base), tether.WithBeforeDial(func(_ context.Context, attempt int, h http.Header) error {
		h.Set("Authorization", "Bearer token-"+strconv.Itoa(attempt))
		return nil
	}))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	for i, want := range []string{"Bearer token-0", "Bearer token-1"} {
		h := b.header(i)
		if h.Get("Authorization") != want || h.Get("X-App") != "demo" {
			t.Fatalf("handshake %d headers %v", i, h)
		}
	}
	if base.Get("Authorization") != "" {
		t.Fatal("the hook changed the caller's header")
	}
}

// Over loopback TCP: the server is stopped and restarted on the same port;
// the client reconnects, and every message sent while it was down arrives
// once, in order. The fake clock drives the backoff.
func TestClientSurvivesAServerRestart(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1")
	b.await() // http.Server.Close does not close hijacked connections: stop aborts those it holds
	b.stop()
	s.rec.expect("disconnected k.1 1006")
	s.rec.expect("scheduled #1 in 1s")
	var sent []string
	for i := range 50 {
		m := "msg-" + strconv.Itoa(i)
		if err := c.SendText(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	s.wait(time.Second) // still down: connection refused
	s.rec.expect("attempt #1 @1s")
	s.rec.expect("scheduled #2 in 2s @1s")
	b.restart()
	s.wait(2 * time.Second)
	s.rec.expect("attempt #2 @3s")
	s.rec.expect("connected k.3")
	s.rec.expect("reconnected k.3 after 2, down 3s")
	var got []string
	for range sent {
		got = append(got, b.next())
	}
	if !slices.Equal(got, sent) {
		t.Fatalf("server got %q", got)
	}
	select {
	case m := <-b.gotCh:
		t.Fatalf("a message arrived twice or unexpected: %q", m)
	default:
	}
}
