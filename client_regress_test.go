package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

type directKey struct{}

// Found in review. A Send whose write on the old connection failed with
// ErrClosed after the next connection had already flushed its queue stayed
// queued, overtaken by later Sends. It now goes to the live connection.
func TestClientSendRacingAReconnectIsNotStranded(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	direct := make(chan struct{}, 16)
	var blocked atomic.Bool
	mw := func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			if string(f.Payload) == "X" && blocked.CompareAndSwap(false, true) {
				close(entered)
				<-release // X is held inside k.1's write
			}
			if ctx.Value(directKey{}) != nil {
				direct <- struct{}{}
			}
			return next(ctx, f)
		}
	}
	c := dial(t, s, b.url(), tether.WithOutboundMiddleware(mw))
	s.rec.expect("connected k.1")
	b.await()
	sendErr := make(chan error, 1)
	go func() { sendErr <- c.SendText(testCtx(t), "X") }()
	<-entered
	b.abortAll()
	s.rec.expect("disconnected k.1 1006")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	s.rec.expect("reconnected k.2")
	dctx := context.WithValue(testCtx(t), directKey{}, true)
	for { // until Sends write to k.2 directly: its flush is over
		if err := c.SendText(dctx, "Y"); err != nil {
			t.Fatal(err)
		}
		if m := b.next(); m != "Y" {
			t.Fatalf("server got %q", m)
		}
		select {
		case <-direct:
		default:
			continue
		}
		break
	}
	close(release) // X's write on the dead k.1 now fails with ErrClosed
	if err := <-sendErr; err != nil {
		t.Fatalf("Send X: %v", err)
	}
	if err := c.SendText(testCtx(t), "Z"); err != nil {
		t.Fatal(err)
	}
	if got := b.next() + "," + b.next(); got != "X,Z" {
		t.Fatalf("server got %s, want X,Z (queued %d)", got, c.Queued())
	}
	if c.Queued() != 0 {
		t.Fatalf("%d still queued", c.Queued())
	}
}

// Found in review. With WithRetryFirstDial the first connection was
// treated as a reconnect: the hook ran on it and Reconnected was published
// with a downtime measured from the zero time.
func TestClientFirstConnectionIsNotAReconnect(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	b.set(http.StatusServiceUnavailable, false)
	var hookRuns atomic.Int32
	done := make(chan *tether.Client, 1)
	go func() {
		c, err := tether.Dial(testCtx(t), b.url(), tether.WithClock(s.clock), tether.WithBus(s.bus),
			tether.WithClientID("k"), tether.WithRetryFirstDial(),
			tether.WithOnReconnect(func(context.Context, *core.Conn) error { hookRuns.Add(1); return nil }))
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	s.rec.expect("scheduled #1 in 1s @0s")
	b.set(0, false)
	s.wait(time.Second)
	s.rec.expect("attempt #1 @1s")
	c := <-done
	if c == nil {
		t.FailNow()
	}
	defer c.Close(ws.StatusNormalClosure, "")
	s.rec.expect("connected k.2")
	s.rec.quiet(s.bus)
	if n := hookRuns.Load(); n != 0 {
		t.Fatalf("the on-reconnect hook ran %d time(s) on the first connection", n)
	}
}

// Found in review. Reconnected could be published after the same
// connection's Disconnected, when it died during the hook; and the counter
// was reset by a connection that never worked.
func TestClientReconnectedNeverFollowsItsDisconnected(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	calls := 0
	hook := func(ctx context.Context, conn *core.Conn) error {
		calls++
		if calls == 1 {
			b.drop()      // the new connection dies while the hook runs ...
			<-conn.Done() // ... and the hook ignores it
		}
		return nil
	}
	dial(t, s, b.url(), tether.WithOnReconnect(hook))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	s.rec.expect("disconnected k.2 1006") // no Reconnected for a connection that died first
	s.rec.expect("scheduled #2 in 2s")    // and the counter was not reset by it
	s.wait(2 * time.Second)
	s.rec.expect("attempt #2")
	s.rec.expect("connected k.3")
	if ev := s.rec.expect("reconnected k.3"); !strings.Contains(ev, "after 2") {
		t.Fatalf("event %q", ev)
	}
}

// Found in review. The on-reconnect hook's error did not reach the
// classifier (only the 1011 close did): a client told "auth refused for
// good" retried the whole schedule.
func TestClientHookErrorReachesTheClassifier(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	errAuth := errors.New("auth refused for good")
	classify := func(err error) bool { return !errors.Is(err, errAuth) && tether.Retryable(err) }
	hookErrs := make(chan events.Error, 4)
	if _, err := events.Subscribe(s.bus, func(e events.Error) { hookErrs <- e }); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, b.url(),
		tether.WithOnReconnect(func(context.Context, *core.Conn) error { return errAuth }),
		tether.WithRetryClassifier(classify))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1 in 1s")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	s.rec.expect("disconnected k.2 1011")
	s.rec.expect("gave up after 1 @1s: tether: on-reconnect hook: auth refused for good")
	select {
	case e := <-hookErrs:
		if !e.Fatal || !errors.Is(e.Err, errAuth) || e.ConnID != "k.2" {
			t.Fatalf("Error event %+v", e)
		}
	default:
		t.Fatal("no Error event for the hook's failure")
	}
	<-c.Done()
	if !errors.Is(c.Err(), errAuth) || !errors.Is(c.Err(), retry.ErrGaveUp) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

// A misconfigured plugin fails the connection it attaches to, closed with
// 1011 and an error wrapping core.ErrInvalidConfig: on the first dial Dial
// returns it; on a reconnect the classifier refuses it and the client gives
// up at once.
func TestClientGivesUpOnAMisconfiguredPlugin(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	_, err := tether.Dial(testCtx(t), b.url(), tether.WithClock(s.clock), tether.WithBus(s.bus),
		tether.WithClientID("k"), tether.WithPlugin(&heartbeat.Heartbeat{})) // not made by New
	if !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Dial = %v, want ErrInvalidConfig", err)
	}
	s.rec.expect("connected k.1")
	s.rec.expect("disconnected k.1 1011")
	s.rec.quiet(s.bus) // the first dial is not retried

	var attaches atomic.Int32
	failSecond := core.PluginFunc(func(*core.Handle) error {
		if attaches.Add(1) > 1 {
			return fmt.Errorf("%w: broken on purpose", core.ErrInvalidConfig)
		}
		return nil
	})
	c := dial(t, s, b.url(), tether.WithClientID("k2"), tether.WithPlugin(failSecond))
	s.rec.expect("connected k2.1")
	b.drop()
	s.rec.expect("disconnected k2.1 1006")
	s.rec.expect("scheduled #1 in 1s")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k2.2")
	s.rec.expect("disconnected k2.2 1011")
	s.rec.expect("gave up after 1")
	<-c.Done()
	if !errors.Is(c.Err(), core.ErrInvalidConfig) || !errors.Is(c.Err(), retry.ErrGaveUp) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

// Close from an event subscriber (the documented place to react to a
// connection's end) ends the client, with no reconnect after it.
func TestClientCloseFromASubscriber(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	b.set(0, true) // never answers a ping
	var c *tether.Client
	ready := make(chan struct{})
	closed := make(chan error, 1)
	if _, err := events.Subscribe(s.bus, func(e heartbeat.Timeout) {
		<-ready
		closed <- c.Close(ws.StatusNormalClosure, "")
	}); err != nil {
		t.Fatal(err)
	}
	c = dial(t, s, b.url(), tether.WithHeartbeat(heartbeat.Config{}))
	close(ready)
	s.rec.expect("connected k.1")
	s.wait(30 * time.Second)
	s.wait(10 * time.Second) // the heartbeat times out; the subscriber closes the client
	s.rec.expect("heartbeat timeout k.1")
	s.rec.expect("disconnected k.1") // 1006 from the heartbeat, or 1000 if the subscriber's Close came first
	select {
	case <-c.Done():
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("the client never ended")
	}
	<-closed
	if !errors.Is(c.Err(), tether.ErrClientClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
	// A reconnect may have been scheduled before Close ran; none is attempted.
	s.clock.Advance(time.Minute)
	_ = s.bus.Wait(testCtx(t))
	for {
		select {
		case ev := <-s.rec.ch:
			if !strings.HasPrefix(ev, "scheduled #1") {
				t.Fatalf("event %q after Close", ev)
			}
			continue
		default:
		}
		break
	}
}

// A queued message an outbound middleware refuses when it is flushed is
// reported by Unsent, not lost; the others go out in order.
func TestClientRefusedAtFlushIsUnsent(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	refuse := func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			if string(f.Payload) == "bad" {
				return errors.New("refused by policy")
			}
			return next(ctx, f)
		}
	}
	c := dial(t, s, b.url(), tether.WithOutboundMiddleware(refuse))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	if c.Conn() != nil {
		t.Fatal("Conn() is not nil while reconnecting")
	}
	for _, m := range []string{"ok1", "bad", "ok2"} {
		if err := c.SendText(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.SendText(cancelled, "never"); !errors.Is(err, context.Canceled) || c.Queued() != 3 {
		t.Fatalf("Send with a cancelled ctx: %v, %d queued", err, c.Queued())
	}
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	if got := b.next() + "," + b.next(); got != "ok1,ok2" {
		t.Fatalf("server got %s", got)
	}
	if u := c.Unsent(); len(u) != 1 || string(u[0].Payload) != "bad" {
		t.Fatalf("Unsent() = %v", u)
	}
	if c.Conn() == nil {
		t.Fatal("Conn() is nil while connected")
	}
}

// Messages queued when the client gives up are reported: by Unsent, and by
// a Shutdown called afterwards, with the give-up; Close afterwards says the
// client has ended.
func TestClientCloseAfterGiveUpReportsUnsent(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	p, err := retry.New(retry.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, b.url(), tether.WithRetry(p))
	s.rec.expect("connected k.1")
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	if err := c.SendText(testCtx(t), "stranded"); err != nil {
		t.Fatal(err)
	}
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("gave up after 1")
	<-c.Done()
	if err := c.Close(ws.StatusNormalClosure, ""); !errors.Is(err, core.ErrClosed) || errors.Is(err, tether.ErrUnsent) {
		t.Fatalf("Close after give-up = %v", err)
	}
	err = c.Shutdown(testCtx(t), ws.StatusNormalClosure, "")
	if !errors.Is(err, tether.ErrUnsent) || !errors.Is(err, retry.ErrGaveUp) {
		t.Fatalf("Shutdown after give-up = %v", err)
	}
	if u := c.Unsent(); len(u) != 1 || string(u[0].Payload) != "stranded" {
		t.Fatalf("Unsent() = %v", u)
	}
}

// Close from the on-reconnect hook returns (it does not wait for the
// goroutine that runs the hook) and ends the client: no reconnect follows.
func TestClientCloseFromTheHook(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	var c *tether.Client
	closed := make(chan error, 1)
	c = dial(t, s, b.url(), tether.WithOnReconnect(func(context.Context, *core.Conn) error {
		closed <- c.Close(ws.StatusNormalClosure, "changed my mind")
		return nil
	}))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	if err := <-closed; err != nil {
		t.Fatalf("Close from the hook = %v", err)
	}
	s.rec.expect("disconnected k.2 1000")
	<-c.Done()
	if !errors.Is(c.Err(), tether.ErrClientClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
	s.clock.Advance(time.Minute)
	s.rec.quiet(s.bus)
}
