package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout) // wall time: a guard against hangs, never reached when tests pass
	t.Cleanup(cancel)
	return ctx
}

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// backend is a WebSocket server over loopback TCP whose behaviour a test
// switches at any moment: accept, refuse the handshake with an HTTP status,
// accept without ever reading (a mute peer); drop or close every live
// connection; stop and restart on the same port. It records what it
// received and the headers of each handshake.
type backend struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	ln       net.Listener
	srv      *http.Server
	refuse   int  // HTTP status to refuse handshakes with; 0 accepts
	mute     bool // accept, but never read
	conns    []*core.Conn
	all      []*core.Conn  // every connection accepted, even those a test dropped
	quit     chan struct{} // closed by stop: mute handlers give up
	stopped  bool
	got      []string      // messages received, in order
	gotCh    chan string   // the same, as they come
	arrived  chan struct{} // one per connection registered
	headers  []http.Header // of every handshake accepted or refused
	handles  map[*core.Conn]*core.Handle
	wg       sync.WaitGroup // the Serve goroutines
	handlers sync.WaitGroup // the handlers
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{t: t, gotCh: make(chan string, 1024), arrived: make(chan struct{}, 1024), quit: make(chan struct{}), handles: map[*core.Conn]*core.Handle{}}
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

func (b *backend) url() string { return "ws://" + b.addr + "/ws" }

func (b *backend) start(addr string) {
	b.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.ln, b.addr = ln, ln.Addr().String()
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serveHTTP)}
	srv := b.srv
	b.mu.Unlock()
	b.wg.Add(1)
	go func() { defer b.wg.Done(); _ = srv.Serve(ln) }()
}

// stop closes the listener and every connection, as a server that died.
func (b *backend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.quit)
	}
	b.mu.Unlock()
	b.abortAll()
	b.mu.Lock()
	all := b.all
	b.mu.Unlock()
	for _, c := range all { // including those a test dropped from its view
		b.abort(c, "backend: stopped")
	}
	b.wg.Wait()
	b.handlers.Wait()
}

// restart brings the server back on the same port.
func (b *backend) restart() {
	b.mu.Lock()
	b.stopped, b.quit = false, make(chan struct{})
	b.mu.Unlock()
	b.start(b.addr)
}

func (b *backend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	b.handlers.Add(1) // http.Server.Close does not wait for hijacked connections' handlers
	defer b.handlers.Done()
	b.mu.Lock()
	b.headers = append(b.headers, r.Header.Clone())
	refuse, mute, quit := b.refuse, b.mute, b.quit
	b.mu.Unlock()
	if refuse != 0 {
		http.Error(w, http.StatusText(refuse), refuse)
		return
	}
	up := &core.Upgrader{Config: core.Config{
		Handler: func(_ context.Context, f core.Frame) error {
			b.mu.Lock()
			b.got = append(b.got, string(f.Payload))
			b.mu.Unlock()
			b.gotCh <- string(f.Payload)
			return nil
		},
		Plugins: []core.Plugin{core.PluginFunc(func(h *core.Handle) error {
			b.mu.Lock()
			b.handles[h.Conn()] = h
			b.mu.Unlock()
			return nil
		})},
	}}
	c, err := up.Upgrade(w, r)
	if err != nil {
		return
	}
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.all = append(b.all, c)
	b.mu.Unlock()
	b.arrived <- struct{}{}
	if mute {
		select { // never reads: no pong, no close answer
		case <-c.Done():
		case <-quit: // stopped: a connection registered after stop's sweep
			b.abort(c, "backend: stopped")
		}
		return
	}
	_ = c.Serve(context.Background())
}

func (b *backend) set(refuse int, mute bool) {
	b.mu.Lock()
	b.refuse, b.mute = refuse, mute
	b.mu.Unlock()
}

// drop aborts the live connection, waiting for the server to have it:
// the client sees the socket die without a close frame (1006).
func (b *backend) drop() {
	b.t.Helper()
	b.await()
	b.abortAll()
}

// await waits until the server holds a live connection: the client's
// Connected can come before the server's handler registered its side.
func (b *backend) await() {
	b.t.Helper()
	for {
		b.mu.Lock()
		live := false
		for _, c := range b.conns {
			select {
			case <-c.Done():
			default:
				live = true
			}
		}
		b.mu.Unlock()
		if live {
			return
		}
		select {
		case <-b.arrived:
		case <-time.After(testTimeout): // wall time: hang guard only
			b.t.Fatal("no connection arrived at the server")
		}
	}
}

// liveConns returns the server's connections now.
func (b *backend) liveConns() []*core.Conn {
	b.await()
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*core.Conn(nil), b.conns...)
}

func (b *backend) abortAll() {
	b.mu.Lock()
	conns := b.conns
	b.conns = nil
	b.mu.Unlock()
	for _, c := range conns {
		b.abort(c, "backend: dropped")
	}
}

// abort ends c at once, without a close frame, through its handle.
func (b *backend) abort(c *core.Conn, why string) {
	b.mu.Lock()
	h := b.handles[c]
	b.mu.Unlock()
	_ = h.Abort(errors.New(why))
}

// closeAll closes every live connection with code.
func (b *backend) closeAll(code ws.StatusCode, reason string) {
	b.await()
	b.mu.Lock()
	conns := b.conns
	b.conns = nil
	b.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(code, reason) // starts the handshake; does not wait
	}
}

func (b *backend) handshakes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.headers)
}

func (b *backend) header(i int) http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.headers[i]
}

// next waits for the next message the server received.
func (b *backend) next() string {
	b.t.Helper()
	select {
	case m := <-b.gotCh:
		return m
	case <-time.After(testTimeout): // wall time: hang guard only
		b.t.Fatal("the server received nothing")
		return ""
	}
}

// recorder subscribes to every lifecycle event of clients and records them
// as lines with their simulated time since t0.
type recorder struct {
	t  *testing.T
	ch chan string
	mu sync.Mutex
	// all lines, in order
	log []string
}

func newRecorder(t *testing.T, bus *events.Bus) *recorder {
	r := &recorder{t: t, ch: make(chan string, 1024)}
	at := func(ts time.Time) string { return ts.Sub(t0).String() }
	add := func(s string) {
		r.mu.Lock()
		r.log = append(r.log, s)
		r.mu.Unlock()
		r.ch <- s
	}
	sub := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := events.Subscribe(bus, func(e events.Connected) { add("connected " + e.ConnID + " @" + at(e.At)) })
	sub(err)
	_, err = events.Subscribe(bus, func(e events.Disconnected) {
		add(fmt.Sprintf("disconnected %s %d @%s", e.ConnID, e.Code, at(e.At)))
	})
	sub(err)
	_, err = events.Subscribe(bus, func(e retry.Scheduled) {
		add(fmt.Sprintf("scheduled #%d in %v @%s", e.Attempt, e.Delay, at(e.At)))
	})
	sub(err)
	_, err = events.Subscribe(bus, func(e retry.Dialing) { add(fmt.Sprintf("attempt #%d @%s", e.Attempt, at(e.At))) })
	sub(err)
	_, err = events.Subscribe(bus, func(e retry.Reconnected) {
		add(fmt.Sprintf("reconnected %s after %d, down %v @%s", e.ConnID, e.Attempts, e.Downtime, at(e.At)))
	})
	sub(err)
	_, err = events.Subscribe(bus, func(e retry.GaveUp) {
		add(fmt.Sprintf("gave up after %d @%s: %v", e.Attempts, at(e.At), e.LastErr))
	})
	sub(err)
	_, err = events.Subscribe(bus, func(e heartbeat.Timeout) { add("heartbeat timeout " + e.ConnID + " @" + at(e.At)) })
	sub(err)
	return r
}

// expect waits for the next event and checks that it starts with want.
func (r *recorder) expect(want string) string {
	r.t.Helper()
	select {
	case got := <-r.ch:
		if !strings.HasPrefix(got, want) {
			r.t.Fatalf("event %q, want %q", got, want)
		}
		return got
	case <-time.After(testTimeout): // wall time: hang guard only
		r.t.Fatalf("no event, want %q", want)
		return ""
	}
}

// quiet checks that nothing else was published.
func (r *recorder) quiet(bus *events.Bus) {
	r.t.Helper()
	if err := bus.Wait(testCtx(r.t)); err != nil {
		r.t.Fatal(err)
	}
	select {
	case got := <-r.ch:
		r.t.Fatalf("unexpected event %q", got)
	default:
	}
}

// sim is a fake clock, a bus and a recorder.
type sim struct {
	clock *clockwork.FakeClock
	bus   *events.Bus
	rec   *recorder
	t     *testing.T
}

func newSim(t *testing.T) *sim {
	bus := events.NewBus()
	t.Cleanup(bus.Close)
	return &sim{clock: clockwork.NewFakeClockAt(t0), bus: bus, rec: newRecorder(t, bus), t: t}
}

// wait advances the clock by d once a timer is armed (the retry loop's
// wait: the caller has seen its retry.Scheduled event).
func (s *sim) wait(d time.Duration) {
	s.t.Helper()
	if err := s.clock.BlockUntilContext(testCtx(s.t), 1); err != nil {
		s.t.Fatalf("no timer armed: %v", err)
	}
	s.clock.Advance(d)
}
