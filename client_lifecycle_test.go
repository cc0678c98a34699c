package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// A connection lost while the on-reconnect hook runs does not end the
// client: the hook returns its ctx's error as asked, but the attempt failed
// because the connection went away (its 1006, or its heartbeat timeout),
// which is worth retrying; the outage goes on with the next attempt.
func TestClientConnLostDuringTheHookKeepsReconnecting(t *testing.T) {
	for _, tc := range []struct {
		name string
		mute bool // the server stops reading: the heartbeat finds it
	}{{"dropped", false}, {"heartbeat timeout", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			b := newBackend(t)
			calls := 0
			inHook := make(chan struct{}, 4)
			opts := []tether.DialOption{tether.WithOnReconnect(func(ctx context.Context, _ *tether.Conn) error {
				calls++
				if calls > 1 {
					return nil
				}
				inHook <- struct{}{}
				<-ctx.Done() // waits for an answer that never comes
				return ctx.Err()
			})}
			if tc.mute {
				opts = append(opts, tether.WithHeartbeat(heartbeat.Config{}))
			}
			c := dial(t, s, b.url(), opts...)
			s.rec.expect("connected k.1 @0s")
			b.drop()
			s.rec.expect("disconnected k.1 1006 @0s")
			s.rec.expect("scheduled #1 in 1s @0s")
			b.set(0, tc.mute)
			s.wait(time.Second)
			s.rec.expect("attempt #1 @1s")
			s.rec.expect("connected k.2 @1s")
			<-inHook
			at := "@1s"
			if tc.mute {
				s.wait(30 * time.Second) // the ping at 31 s is never answered
				s.wait(10 * time.Second) // dead at 41 s
				s.rec.expect("heartbeat timeout k.2 @41s")
				at = "@41s"
			} else {
				b.drop()
			}
			s.rec.expect("disconnected k.2 1006 " + at)
			got := s.rec.expect("scheduled #2 in 2s " + at) // the attempt failed: the count goes on
			if strings.Contains(got, "gave up") {
				t.Fatal(got)
			}
			b.set(0, false)
			s.wait(2 * time.Second)
			s.rec.expect("attempt #2")
			s.rec.expect("connected k.3")
			s.rec.expect("reconnected k.3 after 2")
			if c.Err() != nil || c.State() == tether.Closed {
				t.Fatalf("client ended: %v", c.Err())
			}
		})
	}
}

// WithMaxElapsed bounds the whole outage, across connections that open but
// do not work: their on-reconnect hook fails, or (with StableAfter) they
// drop before they have been up long enough. The attempt count and the
// elapsed time run on across them, so the client gives up at the bound.
func TestClientMaxElapsedBoundsAnOutageOfConnectionsThatDoNotWork(t *testing.T) {
	for _, tc := range []string{"hook fails", "flaps"} {
		t.Run(tc, func(t *testing.T) {
			s := newSim(t)
			b := newBackend(t)
			opts := []retry.Option{retry.WithMaxAttempts(retry.Unlimited), retry.WithMaxElapsed(10 * time.Second)}
			var dopts []tether.DialOption
			if tc == "hook fails" {
				dopts = append(dopts, tether.WithOnReconnect(func(context.Context, *tether.Conn) error {
					return errors.New("auth: refused")
				}))
			} else {
				opts = append(opts, retry.WithStableAfter(time.Minute))
			}
			p, err := retry.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, s, b.url(), append(dopts, tether.WithRetry(p))...)
			s.rec.expect("connected k.1 @0s")
			if tc == "flaps" {
				s.clock.Advance(time.Minute) // k.1 stays up long enough to count as working
			}
			start := s.clock.Since(t0)
			b.drop()
			s.rec.expect("disconnected k.1 1006")
			// Waits of 1, 2 and 4 s fit in 10 s; the fourth (8 s, at 7 s) does not.
			for i, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
				s.rec.expect(fmt.Sprintf("scheduled #%d in %v", i+1, d))
				s.wait(d)
				s.rec.expect(fmt.Sprintf("attempt #%d", i+1))
				s.rec.expect(fmt.Sprintf("connected k.%d", i+2))
				if tc == "flaps" {
					s.rec.expect(fmt.Sprintf("reconnected k.%d after %d", i+2, i+1)) // it opened, but does not stay
					b.drop()                                                         // up, and down again at once
					s.rec.expect(fmt.Sprintf("disconnected k.%d 1006", i+2))
				} else {
					s.rec.expect(fmt.Sprintf("disconnected k.%d 1011", i+2)) // closed: "reconnect hook failed"
				}
			}
			s.rec.expect("gave up after 3 @" + (start + 7*time.Second).String())
			<-c.Done()
			if !errors.Is(c.Err(), retry.ErrGaveUp) {
				t.Fatalf("Err() = %v", c.Err())
			}
		})
	}
}

// With the default policy the attempt counter resets as soon as a
// connection opens, as the recipe resets it in onopen: a server that
// accepts and drops at once is retried after 1 s every time, forever, and
// deterministically (whatever wins the race between the open and the drop).
// WithStableAfter is what makes such a server see the backoff grow.
func TestClientAcceptAndDropRetriesAfterOneSecondEveryTime(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	dial(t, s, b.url())
	s.rec.expect("connected k.1 @0s")
	for i := 1; i <= 8; i++ { // more outages than the five attempts of the policy
		b.drop()
		s.rec.expect(fmt.Sprintf("disconnected k.%d 1006", i))
		s.rec.expect("scheduled #1 in 1s")
		s.wait(time.Second)
		s.rec.expect("attempt #1")
		s.rec.expect(fmt.Sprintf("connected k.%d", i+1))
		s.rec.expect(fmt.Sprintf("reconnected k.%d after 1, down 1s", i+1))
	}
}

// pipeServer is a WithNetDial transport over net.Pipe whose server side
// completes the handshake and then reads one byte of whatever the client
// writes next, and nothing more: the client's write blocks half done, as
// on a peer that stopped reading, with no timing involved.
type pipeServer struct {
	t       *testing.T
	reading chan struct{} // one per connection: its first byte after the handshake was read
	mu      sync.Mutex
	ends    []net.Conn
}

func newPipeServer(t *testing.T) *pipeServer {
	p := &pipeServer{t: t, reading: make(chan struct{}, 8)}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.ends {
			_ = c.Close()
		}
	})
	return p
}

func (p *pipeServer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	cli, srv := net.Pipe()
	p.mu.Lock()
	p.ends = append(p.ends, srv)
	p.mu.Unlock()
	go func() {
		up := core.Upgrader{Config: core.Config{ID: "server"}}
		if _, err := up.Accept(srv); err != nil { // never served: it never reads through the connection
			return
		}
		var one [1]byte
		if _, err := srv.Read(one[:]); err == nil {
			p.reading <- struct{}{}
		}
	}()
	return cli, nil
}

// Send's ctx bounds the write: against a peer that stopped reading, a Send
// whose ctx ends while it is stuck on the socket returns an error matching
// the ctx's, and the connection is aborted (it cannot be used after a half
// written frame), so the client reconnects.
func TestClientSendCtxBoundsAStuckWrite(t *testing.T) {
	s := newSim(t)
	p := newPipeServer(t)
	c := dial(t, s, "ws://pipe.test/ws", tether.WithNetDial(p.dial))
	s.rec.expect("connected k.1 @0s")
	ctx, cancel := context.WithCancel(testCtx(t))
	sent := make(chan error, 1)
	go func() { sent <- c.Send(ctx, tether.OpBinary, make([]byte, 64<<10)) }()
	<-p.reading // the frame is half written and the write blocked
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v before its ctx ended, on a peer that does not read", err)
	default:
	}
	cancel()
	err := <-sent
	if !errors.Is(err, context.Canceled) || !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Send = %v, want context.Canceled and ErrClosed", err)
	}
	s.rec.expect("disconnected k.1 1006 @0s")
	s.rec.expect("scheduled #1 in 1s @0s") // the client goes on
}

// Shutdown waits for the end, however many call it at once: when each
// returns, Done is closed and Unsent holds every message that was queued.
func TestClientConcurrentShutdownsWaitForTheEnd(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1")
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	const n = 20
	for i := range n {
		if err := c.SendText(testCtx(t), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			err := c.Shutdown(testCtx(t), ws.StatusNormalClosure, "bye")
			select {
			case <-c.Done():
			default:
				err = fmt.Errorf("Shutdown returned before Done: %v", err)
			}
			if u := c.Unsent(); len(u) != n {
				err = fmt.Errorf("Unsent() has %d messages when Shutdown returned, want %d", len(u), n)
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; !errors.Is(err, tether.ErrUnsent) {
			t.Fatal(err)
		}
	}
	if err := c.Close(ws.StatusNormalClosure, ""); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Close after the end: %v", err)
	}
}

// The on-reconnect hook may close the client from a goroutine of its own
// and wait for that goroutine: Close starts the end and returns, so
// nothing waits for the hook's own return.
func TestClientCloseFromAGoroutineOfTheHook(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	var c *tether.Client
	closed := make(chan error, 1)
	c = dial(t, s, b.url(), tether.WithOnReconnect(func(ctx context.Context, _ *tether.Conn) error {
		done := make(chan error)
		go func() { done <- c.Close(ws.StatusNormalClosure, "from the hook") }()
		err := <-done // the old Close waited for the hook: this hung for ever
		closed <- err
		return nil
	}))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	if err := <-closed; err != nil {
		t.Fatalf("Close from the hook's goroutine = %v", err)
	}
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("the client did not end")
	}
	if !errors.Is(c.Err(), tether.ErrClientClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

// Reconnect replaces a live connection at once, with no backoff, and
// returns once the new one is live; while the client backs off it cuts the
// wait short; on an ended client it fails.
func TestClientReconnect(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1 @0s")
	b.await()
	if err := c.Reconnect(testCtx(t)); err != nil {
		t.Fatalf("Reconnect while live: %v", err)
	}
	s.rec.expect("disconnected k.1 1000 @0s")
	s.rec.expect("attempt #1 @0s") // no schedule, no wait
	s.rec.expect("connected k.2 @0s")
	s.rec.expect("reconnected k.2 after 1, down 0s @0s")
	if c.State() != tether.Live || c.Conn() == nil || c.Conn().ID() != "k.2" {
		t.Fatalf("state %v, conn %v", c.State(), c.Conn())
	}

	// While backing off.
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.2 1006 @0s")
	s.rec.expect("scheduled #1 in 1s @0s")
	if err := s.clock.BlockUntilContext(testCtx(t), 1); err != nil { // waiting 1 s
		t.Fatal(err)
	}
	if c.State() != tether.BackingOff {
		t.Fatalf("state %v, want backing off", c.State())
	}
	b.set(0, false)
	if err := c.Reconnect(testCtx(t)); err != nil {
		t.Fatalf("Reconnect while backing off: %v", err)
	}
	s.rec.expect("attempt #1 @0s") // at once, not at 1 s
	s.rec.expect("connected k.3 @0s")
	s.rec.expect("reconnected k.3 after 1")

	// A ctx that ends first: the reconnect goes on.
	b.set(http.StatusServiceUnavailable, false)
	ctx, cancel := context.WithCancel(testCtx(t))
	seen := make(chan []string, 1)
	go func() { // cancels once the forced attempt was made (and refused)
		defer cancel()
		var lines []string
		for len(lines) < 2 {
			select {
			case l := <-s.rec.ch:
				lines = append(lines, l)
			case <-ctx.Done():
				return
			}
		}
		seen <- lines
	}()
	if err := c.Reconnect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconnect with a cancelled ctx: %v", err)
	}
	if lines := <-seen; !strings.HasPrefix(lines[0], "disconnected k.3 1000") || !strings.HasPrefix(lines[1], "attempt #1") {
		t.Fatalf("events %q", lines)
	}
	s.rec.expect("scheduled #2 in 2s") // the schedule takes over from the forced attempt

	_ = c.Shutdown(testCtx(t), ws.StatusNormalClosure, "")
	if err := c.Reconnect(testCtx(t)); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Reconnect on an ended client: %v", err)
	}
}

// The supervisor's states, at the moments they can be observed for sure.
func TestClientStates(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	inHook := make(chan struct{})
	release := make(chan struct{})
	dialing := make(chan struct{}, 4)
	proceed := make(chan struct{}, 4)
	c := dial(t, s, b.url(),
		tether.WithBeforeDial(func(_ context.Context, attempt int, _ http.Header) error {
			if attempt > 0 {
				dialing <- struct{}{}
				<-proceed
			}
			return nil
		}),
		tether.WithOnReconnect(func(context.Context, *tether.Conn) error {
			close(inHook)
			<-release
			return nil
		}))
	if st := c.State(); st != tether.Live {
		t.Fatalf("after Dial: %v", st)
	}
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	if err := s.clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st != tether.BackingOff {
		t.Fatalf("waiting to reconnect: %v", st)
	}
	s.clock.Advance(time.Second)
	<-dialing
	if st := c.State(); st != tether.Connecting {
		t.Fatalf("dialing: %v", st)
	}
	proceed <- struct{}{}
	<-inHook
	if st := c.State(); st != tether.Flushing {
		t.Fatalf("in the hook: %v", st)
	}
	if err := c.SendText(testCtx(t), "queued behind the hook"); err != nil || c.Queued() != 1 {
		t.Fatalf("Send during the hook: %v, %d queued", err, c.Queued())
	}
	close(release)
	if got := b.next(); got != "queued behind the hook" {
		t.Fatalf("server got %q", got)
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st != tether.Closing && st != tether.Closed { // the close may be over already
		t.Fatalf("after Close: %v", st)
	}
	<-c.Done()
	if st := c.State(); st != tether.Closed || st.String() != "closed" {
		t.Fatalf("after Done: %v", st)
	}
	if tether.ClientState(42).String() != "ClientState(42)" {
		t.Fatal(tether.ClientState(42).String())
	}
}

// The heartbeat is on by default on a client: a ping at 30 s with no
// option asking for it.
func TestClientHeartbeatOnByDefault(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	sent := make(chan heartbeat.PingSent, 1)
	subscribe(t, s.bus, func(e heartbeat.PingSent) { sent <- e })
	c, err := tether.Dial(testCtx(t), b.url(), tether.WithClock(s.clock), tether.WithBus(s.bus), tether.WithClientID("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, c)
	s.wait(30 * time.Second)
	select {
	case e := <-sent:
		if e.ConnID != "k.1" || e.At.Sub(t0) != 30*time.Second {
			t.Fatalf("ping %+v", e)
		}
	case <-testCtx(t).Done():
		t.Fatal("no ping at 30 s")
	}
}

// constantTwice is a reconnect strategy written outside the retry package:
// wait 5 s, twice, then give up with an error of its own. It publishes an
// event of its own type before each wait.
type constantTwice struct{}

type tried struct {
	ClientID string
	N        int
	At       time.Time
}

func (tried) Topic() string     { return "test.tried" }
func (e tried) Source() string  { return e.ClientID }
func (e tried) Time() time.Time { return e.At }

var errTwice = errors.New("constantTwice: two attempts are enough")

func (constantTwice) Start(info core.ClientInfo) (core.Schedule, error) {
	return &twiceSchedule{info: info}, nil
}

type twiceSchedule struct {
	info core.ClientInfo
	n    int
}

func (s *twiceSchedule) Opened(*core.Handle) { s.n = 0 }
func (s *twiceSchedule) Forced()             {}
func (s *twiceSchedule) Dialing() int        { s.n++; return s.n }
func (s *twiceSchedule) Lost(error) (time.Duration, error) {
	if s.n >= 2 {
		return 0, errTwice
	}
	events.Publish(s.info.Bus, tried{ClientID: s.info.ID, N: s.n + 1, At: s.info.Clock.Now()})
	return 5 * time.Second, nil
}

// Another reconnect strategy replaces the retry plugin through the same
// interface: the client follows its delays, carries its events, and ends
// with its error.
func TestClientWithAnotherReconnector(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	tries := make(chan tried, 4)
	subscribe(t, s.bus, func(e tried) { tries <- e })
	c := dial(t, s, b.url(), tether.WithReconnector(constantTwice{}))
	s.rec.expect("connected k.1 @0s")
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.1 1006 @0s")
	for _, at := range []time.Duration{0, 5 * time.Second} {
		if e := <-tries; e.At.Sub(t0) != at {
			t.Fatalf("tried %+v, want at %v", e, at)
		}
		s.wait(5 * time.Second)
	}
	<-c.Done()
	if !errors.Is(c.Err(), errTwice) || s.clock.Since(t0) != 10*time.Second {
		t.Fatalf("Err() = %v at %v", c.Err(), s.clock.Since(t0))
	}
	if n := b.handshakes(); n != 3 {
		t.Fatalf("%d handshakes, want 1 + 2", n)
	}
}

// Reconnect works without a reconnect plugin: one forced dial, and the
// client goes on with the new connection.
func TestClientReconnectWithoutRetry(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url(), tether.WithoutRetry())
	s.rec.expect("connected k.1")
	b.await()
	if err := c.Reconnect(testCtx(t)); err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	s.rec.expect("disconnected k.1 1000")
	s.rec.expect("connected k.2")
	if c.Err() != nil || c.State() != tether.Live {
		t.Fatalf("state %v, err %v", c.State(), c.Err())
	}
	if err := c.SendText(testCtx(t), "on k.2"); err != nil || b.next() != "on k.2" {
		t.Fatalf("Send on the new connection: %v", err)
	}
}

// While its connection is closing (here, waiting for a peer that does not
// answer the close), the client says so: it is backing off, has no
// connection, and queues what is sent.
func TestClientStateWhileItsConnectionCloses(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	b.set(0, true) // accepts, never reads: no answer to a close frame
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1")
	b.await()
	done := make(chan error, 1)
	go func() { done <- c.Reconnect(testCtx(t)) }()
	ctx := testCtx(t)
	for c.State() != tether.BackingOff { // Reconnect starts the close on its own goroutine
		select {
		case <-ctx.Done():
			t.Fatalf("state %v while the connection closes", c.State())
		default:
			runtime.Gosched()
		}
	}
	if c.Conn() != nil {
		t.Fatalf("Conn() = %v while it closes", c.Conn().ID())
	}
	if err := c.SendText(testCtx(t), "queued"); err != nil || c.Queued() != 1 {
		t.Fatalf("Send while closing: %v, %d queued", err, c.Queued())
	}
	if err := s.clock.BlockUntilContext(testCtx(t), 1); err != nil { // the close timer
		t.Fatal(err)
	}
	b.set(0, false) // the next connection is served normally
	s.clock.Advance(core.DefaultCloseTimeout)
	if err := <-done; err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	s.rec.expect("disconnected k.1 1000")
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
}

// A text message that is not UTF-8 is refused by Send with a clear error,
// instead of being sent and getting the connection closed with 1007, which
// is not worth a reconnect: the client goes on.
func TestClientSendRefusesInvalidUTF8(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1")
	if err := c.Send(testCtx(t), tether.OpText, []byte{0xff, 'x'}); !errors.Is(err, core.ErrInvalidUTF8) {
		t.Fatalf("Send of invalid UTF-8 text: %v", err)
	}
	if err := c.Send(testCtx(t), tether.OpBinary, []byte{0xff, 'x'}); err != nil {
		t.Fatalf("the same bytes as binary: %v", err)
	}
	if got := b.next(); got != "\xffx" {
		t.Fatalf("server got %q", got)
	}
	s.rec.quiet(s.bus)
}

// A client whose plugin serves the connection itself (a misuse) does not
// leak: the client waits for that connection's end all the same.
func TestClientWhoseConnectionSomeoneElseServes(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	served := make(chan error, 1)
	rogue := core.PluginFunc(func(h *core.Handle) error {
		conn := h.Conn()
		go func() { served <- conn.Serve(context.Background()) }()
		return nil
	})
	c := dial(t, s, b.url(), tether.WithPlugin(rogue))
	s.rec.expect("connected k.1")
	if err := c.SendText(testCtx(t), "works"); err != nil || b.next() != "works" {
		t.Fatalf("Send: %v", err)
	}
	s.rec.quiet(s.bus) // no phantom reconnect
	shutdown(t, c)
	// Whichever Serve came first ran the read loop; the other was refused.
	if err := <-served; !errors.Is(err, core.ErrAlreadyServing) && core.CloseStatus(err) != ws.StatusNormalClosure {
		t.Fatalf("the rogue Serve returned %v", err)
	}
	if n := b.handshakes(); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}
}

// A client that ended on its own says why, and matches ErrClosed and
// ErrGaveUp, both re-exported by tether.
func TestClientEndedErrors(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	p, _ := retry.New(retry.WithMaxAttempts(1))
	c := dial(t, s, b.url(), tether.WithRetry(p))
	s.rec.expect("connected k.1")
	b.set(http.StatusServiceUnavailable, false)
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	<-c.Done()
	err := c.SendText(testCtx(t), "late")
	if !errors.Is(err, tether.ErrClosed) || !errors.Is(err, tether.ErrGaveUp) || !strings.HasPrefix(err.Error(), "tether: client ended: retry: gave up") {
		t.Fatalf("Send after the give-up: %v", err)
	}
	if _, err := tether.Dial(testCtx(t), b.url(), tether.WithReconnector(constantTwice{}), tether.WithRetryClassifier(tether.Retryable)); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("a classifier beside another reconnector: %v", err)
	}
}

// Shutdown is bounded by its ctx: against a peer that does not answer the
// close, it returns ctx's error and the close goes on, ended by the close
// timeout on the clock.
func TestClientShutdownBoundedByCtx(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	b.set(0, true) // never reads: no answer to the close frame
	c := dial(t, s, b.url())
	s.rec.expect("connected k.1")
	b.await()
	ctx, cancel := context.WithCancel(testCtx(t))
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(ctx, ws.StatusNormalClosure, "bye") }()
	if err := s.clock.BlockUntilContext(testCtx(t), 1); err != nil { // the close timer
		t.Fatal(err)
	}
	cancel()
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want the ctx's error", err)
	}
	select {
	case <-c.Done():
		t.Fatal("the client ended before its close timed out")
	default:
	}
	s.clock.Advance(core.DefaultCloseTimeout)
	if err := c.Shutdown(testCtx(t), ws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("a second Shutdown, once the close timed out: %v", err)
	}
}
