package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/internal/memconn"
	"github.com/tetherws/tether/retry"
)

// These tests drive retry.Reconnect's core.Schedule the way a client's
// supervisor does (Opened, Lost, Dialing, Forced), on a fake clock that
// the test advances by the delays Lost returns, and record the events the
// schedule publishes. Nothing waits on the clock: the schedule only
// computes, so no goroutine needs to hold a timer before Advance.

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

var (
	errLost = errors.New("lost")
	errDown = errors.New("connection refused")
)

// client is one simulated client: its schedule, its clock and a recorder
// of the reconnect events on its bus.
type client struct {
	t     *testing.T
	clock *clockwork.FakeClock
	bus   *events.Bus
	sched core.Schedule

	mu          sync.Mutex
	log         []string
	reconnected []retry.Reconnected
}

func newClient(t *testing.T, r *retry.Reconnect) *client {
	t.Helper()
	c := &client{t: t, clock: clockwork.NewFakeClockAt(t0), bus: events.NewBus()}
	t.Cleanup(func() {
		c.bus.Close()
		_ = c.bus.Wait(testCtx(t)) // the dispatcher is gone before goleak looks
	})
	at := func(ts time.Time) time.Duration { return ts.Sub(t0) }
	add := func(f string, a ...any) { c.mu.Lock(); c.log = append(c.log, fmt.Sprintf(f, a...)); c.mu.Unlock() }
	sub := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := events.Subscribe(c.bus, func(e retry.Scheduled) {
		add("scheduled #%d in %v @%v (%v)", e.Attempt, e.Delay, at(e.At), e.Cause)
	})
	sub(err)
	_, err = events.Subscribe(c.bus, func(e retry.Dialing) { add("attempt #%d @%v", e.Attempt, at(e.At)) })
	sub(err)
	_, err = events.Subscribe(c.bus, func(e retry.Reconnected) {
		add("reconnected after %d, down %v @%v", e.Attempts, e.Downtime, at(e.At))
		c.mu.Lock()
		c.reconnected = append(c.reconnected, e)
		c.mu.Unlock()
	})
	sub(err)
	_, err = events.Subscribe(c.bus, func(e retry.GaveUp) {
		add("gave up after %d @%v (%v)", e.Attempts, at(e.At), e.LastErr)
	})
	sub(err)
	s, err := r.Start(core.ClientInfo{ID: "k", Clock: c.clock, Bus: c.bus})
	sub(err)
	c.sched = s
	return c
}

// opened tells the schedule a connection opened, with the handle of a
// real connection on the client's bus (an event the schedule emits with
// core.Emit goes there). It returns the connection's id.
func (c *client) opened() string {
	c.t.Helper()
	h := newHandle(c.t, c.bus)
	c.sched.Opened(h)
	return h.Conn().ID()
}

// lost tells the schedule the connection or attempt ended with cause and,
// if it schedules another attempt, waits the delay on the fake clock and
// starts it (Dialing). It returns the delay, or the schedule's error.
func (c *client) lost(cause error) (time.Duration, error) {
	c.t.Helper()
	d, err := c.sched.Lost(cause)
	if err != nil {
		return 0, err
	}
	c.clock.Advance(d)
	if n := c.sched.Dialing(); n < 1 {
		c.t.Fatalf("Dialing returned attempt %d", n)
	}
	return d, nil
}

// mustLose is lost that fails the test on an error.
func (c *client) mustLose(cause error) time.Duration {
	c.t.Helper()
	d, err := c.lost(cause)
	if err != nil {
		c.t.Fatalf("Lost(%v) gave up: %v", cause, err)
	}
	return d
}

func (c *client) events() []string {
	c.t.Helper()
	if err := c.bus.Wait(testCtx(c.t)); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}

func (c *client) expect(want ...string) {
	c.t.Helper()
	if got := c.events(); !slices.Equal(got, want) {
		c.t.Fatalf("events:\n%q\nwant:\n%q", got, want)
	}
}

// newHandle returns the handle of a real connection (accepted in memory,
// never served) that publishes on bus; the test's cleanup closes it.
func newHandle(t *testing.T, bus *events.Bus) *core.Handle {
	t.Helper()
	var h *core.Handle
	up := &core.Upgrader{Config: core.Config{Bus: bus, Plugins: []core.Plugin{
		core.PluginFunc(func(ph *core.Handle) error { h = ph; return nil }),
	}}}
	conn, err := up.Accept(memconn.NewFrames(memconn.UpgradeRequest, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close(1000, "") // not served: sends the close frame and releases the socket
		<-conn.Done()
	})
	return h
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // wall time: hang guard only
	t.Cleanup(cancel)
	return ctx
}

func mustReconnect(t *testing.T, opts ...retry.Option) *retry.Reconnect {
	t.Helper()
	return &retry.Reconnect{Policy: must[*retry.Policy](t)(retry.New(opts...))}
}

// The recipe's schedule: after the connection is lost, attempts after 1,
// 2, 4, 8 and 16 s; the fifth fails and the schedule gives up, with an
// error and a GaveUp event that carry the last attempt's error.
func TestRecipeScheduleThenGiveUp(t *testing.T) {
	c := newClient(t, &retry.Reconnect{}) // nil Policy: Default()
	c.opened()
	var delays []time.Duration
	cause := errLost
	for range 5 {
		delays = append(delays, c.mustLose(cause))
		cause = errDown
	}
	_, err := c.lost(errDown)
	var gu *retry.GaveUpError
	if !errors.As(err, &gu) || gu.Attempts != 5 || gu.LastErr != errDown || !errors.Is(err, retry.ErrGaveUp) || !errors.Is(err, errDown) {
		t.Fatalf("Lost after the fifth attempt = %v", err)
	}
	if want := []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s}; !slices.Equal(delays, want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	c.expect(
		"scheduled #1 in 1s @0s (lost)", "attempt #1 @1s",
		"scheduled #2 in 2s @1s (connection refused)", "attempt #2 @3s",
		"scheduled #3 in 4s @3s (connection refused)", "attempt #3 @7s",
		"scheduled #4 in 8s @7s (connection refused)", "attempt #4 @15s",
		"scheduled #5 in 16s @15s (connection refused)", "attempt #5 @31s",
		"gave up after 5 @31s (connection refused)",
	)
}

// With StableAfter 0 (the default, the recipe's onopen) the counter is
// reset when a connection opens: the next loss starts again at 1 s and
// attempt 1, and a Reconnected reports the outage that ended.
func TestCounterResetsWhenAConnectionOpens(t *testing.T) {
	c := newClient(t, &retry.Reconnect{})
	c.opened()
	c.mustLose(errLost)
	c.mustLose(errDown) // attempt 2 at 3 s
	id := c.opened()
	if d := c.mustLose(errLost); d != s {
		t.Fatalf("first delay after a reconnect %v, want 1s", d)
	}
	c.expect(
		"scheduled #1 in 1s @0s (lost)", "attempt #1 @1s",
		"scheduled #2 in 2s @1s (connection refused)", "attempt #2 @3s",
		"reconnected after 2, down 3s @3s",
		"scheduled #1 in 1s @3s (lost)", "attempt #1 @4s",
	)
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := (retry.Reconnected{ClientID: "k", ConnID: id, Attempts: 2, Downtime: 3 * s, At: t0.Add(3 * s)}); c.reconnected[0] != want {
		t.Fatalf("Reconnected = %+v, want %+v", c.reconnected[0], want)
	}
}

// Issue 13, item 9: with the default policy, a server that accepts and
// drops every connection at once never makes the client give up: each
// connection opened, so each resets the counter, whatever goroutine wins
// the race against its close.
func TestDefaultPolicyKeepsRetryingConnectionsThatOpen(t *testing.T) {
	c := newClient(t, &retry.Reconnect{})
	c.opened()
	for i := range 20 {
		d, err := c.lost(errLost)
		if err != nil || d != s {
			t.Fatalf("loss %d: delay %v, %v; want 1s", i+1, d, err)
		}
		c.opened() // and dropped at once, by the next loss
	}
}

// Issue 13, item 9: "WithMaxElapsed never ends an outage whose connections
// open but never work". With StableAfter, a connection lost before it
// stayed open that long does not end the outage: neither the attempt
// count nor the outage's start is reset, so the backoff grows and
// WithMaxElapsed ends an outage of flapping connections.
func TestFlappingConnectionsDoNotResetTheOutage(t *testing.T) {
	c := newClient(t, mustReconnect(t,
		retry.WithStableAfter(10*s), retry.WithMaxElapsed(30*s), retry.WithMaxAttempts(retry.Unlimited)))
	c.opened()
	c.clock.Advance(time.Minute) // the first connection worked for a minute
	c.mustLose(errLost)          // the outage starts at 60 s
	var err error
	for i := 0; err == nil; i++ {
		if i == 10 {
			t.Fatalf("still retrying after %v of flapping connections", c.clock.Since(t0.Add(time.Minute)))
		}
		c.opened()               // each attempt opens...
		c.clock.Advance(s)       // ...and drops a second later, before StableAfter
		_, err = c.lost(errLost) // elapsed 2, 5, 10, 19 s; then 19+16 > 30
	}
	var gu *retry.GaveUpError
	if !errors.As(err, &gu) || gu.Attempts != 4 || !errors.Is(err, errLost) {
		t.Fatalf("the flapping outage ended with %v, want a GaveUpError after 4 attempts", err)
	}
	c.expect(
		"scheduled #1 in 1s @1m0s (lost)", "attempt #1 @1m1s", "reconnected after 1, down 1s @1m1s",
		"scheduled #2 in 2s @1m2s (lost)", "attempt #2 @1m4s", "reconnected after 2, down 4s @1m4s",
		"scheduled #3 in 4s @1m5s (lost)", "attempt #3 @1m9s", "reconnected after 3, down 9s @1m9s",
		"scheduled #4 in 8s @1m10s (lost)", "attempt #4 @1m18s", "reconnected after 4, down 18s @1m18s",
		"gave up after 4 @1m19s (lost)",
	)
}

// A connection that stayed open for StableAfter ended the outage: its loss
// starts a new one, at attempt 1 and with a fresh elapsed time.
func TestAStableConnectionEndsTheOutage(t *testing.T) {
	c := newClient(t, mustReconnect(t, retry.WithStableAfter(10*s), retry.WithMaxElapsed(30*s)))
	c.opened()
	c.mustLose(errLost)
	c.mustLose(errLost)
	c.opened()              // at 3 s
	c.clock.Advance(10 * s) // stable
	if d := c.mustLose(errLost); d != s {
		t.Fatalf("first delay of a new outage %v, want 1s", d)
	}
	c.opened()
	c.expect(
		"scheduled #1 in 1s @0s (lost)", "attempt #1 @1s",
		"scheduled #2 in 2s @1s (lost)", "attempt #2 @3s",
		"reconnected after 2, down 3s @3s",
		"scheduled #1 in 1s @13s (lost)", "attempt #1 @14s",
		"reconnected after 1, down 1s @14s",
	)
}

// A cause the classifier refuses gives up at once, without an attempt and
// without a Scheduled event; the error wraps the cause. An attempt that
// fails with such a cause ends the outage too.
func TestNonRetryableCauseGivesUpAtOnce(t *testing.T) {
	denied := errors.New("401")
	r := &retry.Reconnect{Retryable: func(err error) bool { return !errors.Is(err, denied) }}
	c := newClient(t, r)
	c.opened()
	_, err := c.lost(fmt.Errorf("handshake: %w", denied))
	var gu *retry.GaveUpError
	if !errors.As(err, &gu) || gu.Attempts != 0 || !errors.Is(err, denied) || !errors.Is(err, retry.ErrGaveUp) {
		t.Fatalf("Lost(denied) = %v", err)
	}
	c.expect("gave up after 0 @0s (handshake: 401)")

	c = newClient(t, r)
	c.opened()
	c.mustLose(errLost)
	_, err = c.lost(denied)
	if !errors.As(err, &gu) || gu.Attempts != 1 || !errors.Is(err, denied) {
		t.Fatalf("an attempt refused for good: %v", err)
	}
	c.expect("scheduled #1 in 1s @0s (lost)", "attempt #1 @1s", "gave up after 1 @1s (401)")
}

// Reconnected is for a reconnect only: not for the client's first
// connection, even when the first dial was retried before it opened.
func TestReconnectedOnlyForAReconnect(t *testing.T) {
	c := newClient(t, &retry.Reconnect{})
	// The first dial failed (the supervisor makes it without Dialing) and
	// was retried twice.
	c.mustLose(errDown)
	c.mustLose(errDown)
	c.opened()
	c.expect(
		"scheduled #1 in 1s @0s (connection refused)", "attempt #1 @1s",
		"scheduled #2 in 2s @1s (connection refused)", "attempt #2 @3s",
	)
	c.clock.Advance(time.Hour)
	c.mustLose(errLost)
	id := c.opened()
	_ = c.events() // delivered
	c.mu.Lock()
	got := slices.Clone(c.reconnected)
	c.mu.Unlock()
	want := []retry.Reconnected{{ClientID: "k", ConnID: id, Attempts: 1, Downtime: s, At: t0.Add(time.Hour + 3*s + s)}}
	if !slices.Equal(got, want) {
		t.Fatalf("Reconnected events %+v, want %+v", got, want)
	}
}

// Forced on a live connection (Client.Reconnect) starts a new outage, even
// under StableAfter: attempts count from 1 again and the downtime from the
// moment it was forced. Forced during a wait cuts it short but keeps the
// outage: the attempt count goes on.
func TestForced(t *testing.T) {
	c := newClient(t, mustReconnect(t, retry.WithStableAfter(10*s)))
	c.opened()
	c.clock.Advance(time.Minute)
	c.mustLose(errLost) // attempt 1 at 61 s
	c.opened()          // not yet stable
	c.clock.Advance(2 * s)
	c.sched.Forced() // at 63 s, on a live connection
	if n := c.sched.Dialing(); n != 1 {
		t.Fatalf("first attempt after Forced on a live connection is #%d, want 1", n)
	}
	c.mustLose(errDown) // attempt 2 after 2 s, at 65 s

	// Forced while waiting before attempt 3: no wait, and the count goes on.
	if _, err := c.sched.Lost(errDown); err != nil {
		t.Fatal(err)
	}
	c.sched.Forced()
	if n := c.sched.Dialing(); n != 3 {
		t.Fatalf("attempt after Forced during a wait is #%d, want 3", n)
	}
	c.opened()
	c.expect(
		"scheduled #1 in 1s @1m0s (lost)", "attempt #1 @1m1s", "reconnected after 1, down 1s @1m1s",
		"attempt #1 @1m3s",
		"scheduled #2 in 2s @1m3s (connection refused)", "attempt #2 @1m5s",
		"scheduled #3 in 4s @1m5s (connection refused)", "attempt #3 @1m5s",
		"reconnected after 3, down 2s @1m5s",
	)
}

// refused is what Dial returns when the server answered the handshake with
// status and, if retryAfter is not empty, a Retry-After header.
func refused(status int, retryAfter string) error {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return fmt.Errorf("dial: %w", &core.HandshakeError{StatusCode: status, Header: h})
}

// With WithHint(RetryAfter), a refusal carrying Retry-After: 7 is retried
// after 7 s instead of the backoff's delay; an HTTP-date or a garbage
// value is ignored (the backoff decides). The hint is still bounded by the
// maximum number of attempts.
func TestRetryAfterSetsTheDelay(t *testing.T) {
	c := newClient(t, mustReconnect(t, retry.WithHint(retry.RetryAfter)))
	c.opened()
	var delays []time.Duration
	for _, cause := range []error{
		refused(503, "7"),
		refused(503, "Fri, 27 Nov 2026 00:00:00 GMT"),
		refused(503, "soon"),
		refused(429, "7"),
		refused(503, ""),
	} {
		delays = append(delays, c.mustLose(cause))
	}
	if want := []time.Duration{7 * s, 2 * s, 4 * s, 7 * s, 16 * s}; !slices.Equal(delays, want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	_, err := c.lost(refused(503, "7"))
	var gu *retry.GaveUpError
	if !errors.As(err, &gu) || gu.Attempts != 5 {
		t.Fatalf("a sixth attempt, hinted: %v; want a give-up after 5", err)
	}
}

// A hinted delay is bounded by WithMaxElapsed like any other.
func TestRetryAfterIsBoundedByMaxElapsed(t *testing.T) {
	c := newClient(t, mustReconnect(t, retry.WithHint(retry.RetryAfter), retry.WithMaxElapsed(20*s)))
	c.opened()
	c.mustLose(refused(503, "7")) // elapsed 0 + 7
	c.mustLose(refused(503, "7")) // elapsed 7 + 7
	_, err := c.lost(refused(503, "7"))
	var gu *retry.GaveUpError
	if !errors.As(err, &gu) || gu.Attempts != 2 {
		t.Fatalf("elapsed 14 s + 7 s over a 20 s bound: %v; want a give-up after 2", err)
	}
	c.expect(
		"scheduled #1 in 7s @0s (dial: tether: handshake refused with HTTP 503 Service Unavailable)", "attempt #1 @7s",
		"scheduled #2 in 7s @7s (dial: tether: handshake refused with HTTP 503 Service Unavailable)", "attempt #2 @14s",
		"gave up after 2 @14s (dial: tether: handshake refused with HTTP 503 Service Unavailable)",
	)
}

// One Reconnect value serves any number of clients, each with its own
// state; a client without a bus publishes nothing and works the same.
func TestOneReconnectServesManyClients(t *testing.T) {
	r := &retry.Reconnect{}
	a := newClient(t, r)
	quiet, err := r.Start(core.ClientInfo{ID: "q", Clock: a.clock}) // no bus
	if err != nil {
		t.Fatal(err)
	}
	a.opened()
	quiet.Opened(newHandle(t, nil))
	a.mustLose(errLost)
	a.mustLose(errLost) // a is at attempt 2
	if d, err := quiet.Lost(errLost); err != nil || d != s {
		t.Fatalf("the other client's first delay: %v, %v; want 1s", d, err)
	}
	if n := quiet.Dialing(); n != 1 {
		t.Fatalf("the other client's first attempt is #%d", n)
	}
	var nilReconnect *retry.Reconnect
	if _, err := nilReconnect.Start(core.ClientInfo{}); !errors.Is(err, retry.ErrInvalidPolicy) {
		t.Fatalf("nil Reconnect: %v", err)
	}
}
