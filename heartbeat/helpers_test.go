package heartbeat_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait, so that a bug fails a test instead of
// hanging it; nothing waits for it when the code works.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout) // wall time: a guard against hangs, never reached when tests pass
	t.Cleanup(cancel)
	return ctx
}

var start = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// sim is a fake clock plus a recorder of every heartbeat and lifecycle
// event, with their simulated times.
type sim struct {
	t     *testing.T
	clock *clockwork.FakeClock
	bus   *events.Bus
	mu    sync.Mutex
	log   []string
	ch    chan string
}

func newSim(t *testing.T) *sim {
	s := &sim{t: t, clock: clockwork.NewFakeClockAt(start), bus: events.NewBus(), ch: make(chan string, 256)}
	t.Cleanup(func() {
		s.bus.Close()
		_ = s.bus.Wait(testCtx(t)) // the dispatcher is gone before goleak looks
	})
	at := func(ts time.Time) string { return ts.Sub(start).String() }
	rec := func(line string) {
		s.mu.Lock()
		s.log = append(s.log, line)
		s.mu.Unlock()
		s.ch <- line
	}
	subscribe(t, s.bus, func(e heartbeat.PingSent) { rec(fmt.Sprintf("%s sent #%d @%s", e.ConnID, e.Seq, at(e.At))) })
	subscribe(t, s.bus, func(e heartbeat.PongReceived) {
		rec(fmt.Sprintf("%s pong #%d rtt=%v @%s", e.ConnID, e.Seq, e.RTT, at(e.At)))
	})
	subscribe(t, s.bus, func(e heartbeat.PingMissed) {
		rec(fmt.Sprintf("%s missed #%d (%d) @%s", e.ConnID, e.Seq, e.Missed, at(e.At)))
	})
	subscribe(t, s.bus, func(e heartbeat.Timeout) {
		if !errors.Is(e.Err, heartbeat.ErrTimeout) {
			t.Errorf("Timeout.Err = %v", e.Err)
		}
		rec(fmt.Sprintf("%s timeout (%d) @%s", e.ConnID, e.Missed, at(e.At)))
	})
	subscribe(t, s.bus, func(e events.Disconnected) { rec(fmt.Sprintf("%s disconnected %d @%s", e.ConnID, e.Code, at(e.At))) })
	return s
}

func subscribe[E events.Event](t *testing.T, b *events.Bus, fn func(E)) {
	t.Helper()
	if _, err := events.Subscribe(b, fn); err != nil {
		t.Fatal(err)
	}
}

// expect waits for the next recorded event and checks it.
func (s *sim) expect(want string) {
	s.t.Helper()
	select {
	case got := <-s.ch:
		if got != want {
			s.t.Fatalf("event %q, want %q", got, want)
		}
	case <-time.After(testTimeout): // wall time: hang guard only
		s.t.Fatalf("no event, want %q", want)
	}
}

// quiet checks that no event is pending once the bus delivered everything.
func (s *sim) quiet() {
	s.t.Helper()
	if err := s.bus.Wait(testCtx(s.t)); err != nil {
		s.t.Fatalf("bus.Wait: %v", err)
	}
	select {
	case got := <-s.ch:
		s.t.Fatalf("unexpected event %q", got)
	default:
	}
}

// step advances simulated time by d and waits until n timers are armed
// again (the heartbeat re-arms its timer after each step): advancing
// before that is the classic fake-clock flake.
func (s *sim) step(d time.Duration, n int) {
	s.t.Helper()
	s.clock.Advance(d)
	if n > 0 {
		if err := s.clock.BlockUntilContext(testCtx(s.t), n); err != nil {
			s.t.Fatalf("timers not re-armed after %v: %v", d, err)
		}
	}
}

// settle waits until n timers are armed.
func (s *sim) settle(n int) {
	s.t.Helper()
	if err := s.clock.BlockUntilContext(testCtx(s.t), n); err != nil {
		s.t.Fatalf("%d timers never armed: %v", n, err)
	}
}

// handles keeps the handle of every connection the tests make (withHandle
// adds the plugin that records it), so that a test can do what only a
// plugin may: abort a connection without a close handshake.
var handles sync.Map // *core.Conn -> *core.Handle

var keepHandle = core.PluginFunc(func(h *core.Handle) error {
	handles.Store(h.Conn(), h)
	return nil
})

// withHandle returns cfg with the keepHandle plugin last.
func withHandle(cfg core.Config) core.Config {
	cfg.Plugins = append(cfg.Plugins[:len(cfg.Plugins):len(cfg.Plugins)], keepHandle)
	return cfg
}

// upgraderWithHandle returns a copy of up whose connections keep their
// handle.
func upgraderWithHandle(up *core.Upgrader) *core.Upgrader {
	cp := *up
	cp.Config = withHandle(up.Config)
	return &cp
}

// abort ends c at once, as a plugin would, and waits (bounded) for its
// end: the cleanup of a test whose peer never answers a close handshake on
// a clock nobody advances. c must have been made with withHandle.
func abort(t *testing.T, c *core.Conn) {
	t.Helper()
	h, ok := handles.LoadAndDelete(c)
	if !ok {
		t.Errorf("connection %s has no kept handle (made without withHandle): cannot abort it", c.ID())
		return
	}
	_ = h.(*core.Handle).Abort(errors.New("test over"))
	select {
	case <-c.Done():
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Errorf("connection %s did not end after Abort", c.ID())
	}
}

func mustHB(t *testing.T, cfg heartbeat.Config) *heartbeat.Heartbeat {
	t.Helper()
	h, err := heartbeat.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// peer is a raw WebSocket endpoint over loopback TCP, written with gobwas/ws
// alone: it does only what a test tells it (answer or not, stop reading).
type peer struct {
	nc       net.Conn
	br       *bufio.Reader
	client   bool   // it masks what it sends
	lastPing string // payload of the last ping read: what a pong echoes
}

// expectPing reads the next frame, checks that it is a ping, and keeps its
// payload for the pong.
func (p *peer) expectPing(t *testing.T) {
	t.Helper()
	op, payload := p.read(t)
	if op != ws.OpPing {
		t.Fatalf("peer read %v %q, want a ping", op, payload)
	}
	p.lastPing = payload
}

// send writes one frame.
func (p *peer) send(t *testing.T, op ws.OpCode, payload string) {
	t.Helper()
	f := ws.NewFrame(op, true, []byte(payload))
	if p.client {
		f = ws.MaskFrame(f)
	}
	if err := ws.WriteFrame(p.nc, f); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

// read reads the next frame, unmasked.
func (p *peer) read(t *testing.T) (ws.OpCode, string) {
	t.Helper()
	op, s, err := p.tryRead()
	if err != nil {
		t.Fatalf("peer read: %v", err)
	}
	return op, s
}

func (p *peer) tryRead() (ws.OpCode, string, error) {
	_ = p.nc.SetReadDeadline(time.Now().Add(testTimeout)) // wall time: hang guard only
	f, err := ws.ReadFrame(p.br)
	if err != nil {
		return 0, "", err
	}
	if f.Header.Masked {
		ws.Cipher(f.Payload, f.Header.Mask, 0)
	}
	return f.Header.OpCode, string(f.Payload), nil
}

// expectFrame reads the next frame and checks it.
func (p *peer) expectFrame(t *testing.T, op ws.OpCode, payload string) {
	t.Helper()
	gotOp, got := p.read(t)
	if gotOp != op || got != payload {
		t.Fatalf("peer read %v %q, want %v %q", gotOp, got, op, payload)
	}
}

// expectEOF reads until the connection ends, failing on any data frame.
func (p *peer) expectGone(t *testing.T) {
	t.Helper()
	for {
		op, s, err := p.tryRead()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the connection was not closed")
			}
			return
		}
		if op != ws.OpClose {
			t.Fatalf("frame %v %q on a connection that should be closing", op, s)
		}
	}
}

// rawServer accepts one WebSocket connection on loopback and returns the
// URL and a channel with the raw server-side peer.
func rawServer(t *testing.T) (string, <-chan *peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *peer, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		if _, err := ws.Upgrade(nc); err != nil {
			nc.Close()
			close(ch)
			return
		}
		p := &peer{nc: nc, br: bufio.NewReader(nc)}
		t.Cleanup(func() { nc.Close() })
		ch <- p
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "ws://" + ln.Addr().String() + "/", ch
}

// dialRaw dials a tether client with cfg to a raw server and serves it. It
// returns the client, the raw peer, and Serve's result channel.
func dialRaw(t *testing.T, cfg core.Config) (*core.Conn, *peer, <-chan error) {
	t.Helper()
	u, peers := rawServer(t)
	c, err := core.Dial(testCtx(t), u, withHandle(cfg))
	if err != nil {
		t.Fatal(err)
	}
	p := <-peers
	if p == nil {
		t.Fatal("raw server failed")
	}
	return c, p, serve(t, c)
}

func serve(t *testing.T, c *core.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Serve(context.Background()) }()
	t.Cleanup(func() { abort(t, c) })
	return ch
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("Serve did not return")
		return nil
	}
}

// rawClient dials a tether server (upgraded with up) as a raw client. It
// returns the raw peer, the server's connection and its Serve result.
func rawClient(t *testing.T, up *core.Upgrader) (*peer, *core.Conn, <-chan error) {
	t.Helper()
	up = upgraderWithHandle(up)
	conns := make(chan *core.Conn, 1)
	errs := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		conns <- c
		errs <- c.Serve(context.Background())
	}))
	t.Cleanup(srv.Close)
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	u, _ := url.Parse("ws" + strings.TrimPrefix(srv.URL, "http") + "/")
	br, _, err := ws.Dialer{}.Upgrade(nc, u)
	if err != nil {
		t.Fatal(err)
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	c := <-conns
	t.Cleanup(func() { abort(t, c) })
	return &peer{nc: nc, br: br, client: true}, c, errs
}

// stuckClient is a raw client over loopback TCP that never reads: both
// socket buffers are shrunk so that a server writer blocks quickly.
func stuckClient(t *testing.T, up *core.Upgrader) (net.Conn, *core.Conn, <-chan error) {
	t.Helper()
	up = upgraderWithHandle(up)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *core.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		_ = nc.(*net.TCPConn).SetWriteBuffer(8 << 10)
		c, err := up.Accept(nc)
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.(*net.TCPConn).SetReadBuffer(8 << 10)
	t.Cleanup(func() { nc.Close() })
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/")
	if _, _, err := (ws.Dialer{}).Upgrade(nc, u); err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		t.Fatal("accept failed")
	}
	return nc, c, serve(t, c)
}

type server struct{ url string }

// newServer is a tether server over loopback TCP that serves every
// connection it upgrades with up until the test ends.
func newServer(t *testing.T, up *core.Upgrader) *server {
	t.Helper()
	up = upgraderWithHandle(up)
	var mu sync.Mutex
	var all []*core.Conn
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		mu.Lock()
		all = append(all, c)
		mu.Unlock()
		_ = c.Serve(context.Background())
	}))
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range all {
			abort(t, c)
		}
		mu.Unlock()
		srv.Close()
	})
	return &server{url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/"}
}
