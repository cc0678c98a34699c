package core_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds any wait in a test, so that a bug fails the test
// instead of hanging it. Nothing waits for it to pass when the code works.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout) // wall time: a guard against hangs, never reached when tests pass
	t.Cleanup(cancel)
	return ctx
}

// inbox is a Handler that copies every message into a channel.
type inbox chan core.Frame

func newInbox() inbox { return make(inbox, 1024) }

func (in inbox) handle(_ context.Context, f core.Frame) error {
	in <- core.Frame{Op: f.Op, Payload: append([]byte(nil), f.Payload...)}
	return nil
}

func (in inbox) next(t *testing.T) core.Frame {
	t.Helper()
	select {
	case f := <-in:
		return f
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("no message arrived")
		return core.Frame{}
	}
}

// served runs c.Serve on a goroutine and returns a channel with its result.
func served(c *core.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Serve(context.Background()) }()
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

// tcpServer is an httptest server that upgrades every request with up and
// serves the connection on the handler's goroutine, as a user would.
type tcpServer struct {
	*httptest.Server
	conns  chan *core.Conn
	errs   chan error // what Serve returned
	upErrs chan error // what Upgrade returned, when it failed
	wg     sync.WaitGroup
	mu     sync.Mutex
	all    []*core.Conn
}

func newTCPServer(t *testing.T, up *core.Upgrader) *tcpServer {
	t.Helper()
	s := &tcpServer{conns: make(chan *core.Conn, 16), errs: make(chan error, 16), upErrs: make(chan error, 16)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		c, err := up.Upgrade(w, r)
		if err != nil {
			s.upErrs <- err
			return
		}
		s.mu.Lock()
		s.all = append(s.all, c)
		s.mu.Unlock()
		s.conns <- c
		s.errs <- c.Serve(r.Context())
	}))
	t.Cleanup(func() {
		s.mu.Lock()
		for _, c := range s.all {
			_ = c.Close(ws.StatusGoingAway, "test over")
		}
		s.mu.Unlock()
		s.Server.Close()
		s.wg.Wait()
	})
	return s
}

func (s *tcpServer) wsURL() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

func (s *tcpServer) conn(t *testing.T) *core.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("no server connection")
		return nil
	}
}

// rawPeer is a WebSocket client that writes whatever frames a test wants,
// valid or not, to a tether server accepted with up, over loopback TCP
// (newRawPeer) or an in-memory pipe (newPipePeer). h is the server
// connection's plugin Handle, for what only a plugin may do.
type rawPeer struct {
	nc    net.Conn
	br    *bufio.Reader
	srv   *core.Conn
	h     *core.Handle
	serve <-chan error
}

func newRawPeer(t *testing.T, up *core.Upgrader) *rawPeer {
	t.Helper()
	return newRawPeerWrap(t, up, nil)
}

// newRawPeerWrap is newRawPeer with the server's socket wrapped by wrap.
func newRawPeerWrap(t *testing.T, up *core.Upgrader, wrap func(net.Conn) net.Conn) *rawPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvNC := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			acceptErr <- err
			return
		}
		srvNC <- nc
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var sc net.Conn
	select {
	case sc = <-srvNC:
	case err := <-acceptErr:
		t.Fatal(err)
	}
	return newRawPeerOn(t, up, sc, nc, wrap)
}

// newPipePeer is newRawPeer over net.Pipe: a peer whose every write from
// the server blocks until the test reads it, so that "a peer that stopped
// reading" needs no full socket buffers.
func newPipePeer(t *testing.T, up *core.Upgrader, wrap func(net.Conn) net.Conn) *rawPeer {
	t.Helper()
	sc, nc := net.Pipe()
	return newRawPeerOn(t, up, sc, nc, wrap)
}

// newRawPeerOn accepts sc with up (plus a plugin that keeps the Handle)
// while the raw client performs the opening handshake on nc, then serves
// the server connection and waits until its read loop answers a ping.
func newRawPeerOn(t *testing.T, up *core.Upgrader, sc, nc net.Conn, wrap func(net.Conn) net.Conn) *rawPeer {
	t.Helper()
	if wrap != nil {
		sc = wrap(sc)
	}
	var hs handles
	u := *up
	u.Plugins = append(slices.Clone(up.Plugins), &hs)
	accepted := make(chan *core.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := u.Accept(sc)
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	addr, _ := url.Parse("ws://" + sc.LocalAddr().String() + "/")
	br, _, err := ws.Dialer{}.Upgrade(nc, addr)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	p := &rawPeer{nc: nc, br: br}
	select {
	case p.srv = <-accepted:
	case err := <-acceptErr:
		nc.Close()
		t.Fatal(err)
	}
	p.h = hs.of(t, p.srv)
	p.serve = served(p.srv)
	t.Cleanup(func() {
		nc.Close()
		<-p.srv.Done()
	})
	// Wait until the read loop runs: it answers a ping.
	p.send(t, masked(ws.NewPingFrame([]byte("ready?"))))
	if f := p.readFrame(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "ready?" {
		t.Fatalf("server did not answer the readiness ping: %v %q", f.Header.OpCode, f.Payload)
	}
	return p
}

// handles is a plugin that keeps the Handle of every connection it attaches
// to, so that a test can do what only a plugin may (Abort, Ping, SetValue,
// OnClose, WriteDirect) on a connection it did not otherwise extend.
type handles struct {
	mu sync.Mutex
	m  map[*core.Conn]*core.Handle
}

var _ core.Plugin = (*handles)(nil)

func (hs *handles) Attach(h *core.Handle) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = make(map[*core.Conn]*core.Handle)
	}
	hs.m[h.Conn()] = h
	return nil
}

func (hs *handles) of(t *testing.T, c *core.Conn) *core.Handle {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h := hs.m[c]
	if h == nil {
		t.Fatal("the connection has no handle: its plugins did not include the keeper")
	}
	return h
}

// dialWithHandle dials url with cfg plus a plugin that keeps the Handle,
// and returns the connection (not yet serving) and its Handle.
func dialWithHandle(t *testing.T, url string, cfg core.Config) (*core.Conn, *core.Handle) {
	t.Helper()
	var hs handles
	cfg.Plugins = append(slices.Clone(cfg.Plugins), &hs)
	c, err := core.Dial(testCtx(t), url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, hs.of(t, c)
}

// send writes a frame as is: the caller decides masking.
func (p *rawPeer) send(t *testing.T, f ws.Frame) {
	t.Helper()
	if err := ws.WriteFrame(p.nc, f); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// readFrame reads the next frame from the server.
func (p *rawPeer) readFrame(t *testing.T) ws.Frame {
	t.Helper()
	f, err := ws.ReadFrame(p.br)
	if err != nil {
		t.Fatalf("raw read: %v", err)
	}
	return f
}

// readClose skips data frames until a close frame and returns its code
// and reason.
func (p *rawPeer) readClose(t *testing.T) (ws.StatusCode, string) {
	t.Helper()
	for {
		f := p.readFrame(t)
		if f.Header.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(f.Payload)
			return code, reason
		}
	}
}

func masked(f ws.Frame) ws.Frame { return ws.MaskFrame(f) }

func asClose(t *testing.T, err error) *core.CloseError {
	t.Helper()
	var ce *core.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *core.CloseError", err, err)
	}
	return ce
}

// newStuckPeer returns a raw peer that will read nothing, and a channel
// with the error of a server-side writer that is certainly stuck: the
// socket buffers are shrunk, the writer sends 4 MiB messages, and the
// channel is returned only once a write of one of them has entered the
// socket, where it cannot finish. The writer holds the connection's write
// lock from then on: what a Close must undo.
func newStuckPeer(t *testing.T, up *core.Upgrader) (*rawPeer, <-chan error) {
	t.Helper()
	bigWrite := make(chan struct{})
	var once sync.Once
	p := newRawPeerWrap(t, up, func(nc net.Conn) net.Conn {
		_ = nc.(*net.TCPConn).SetWriteBuffer(8 << 10)
		return &signalConn{Conn: nc, onBig: func() { once.Do(func() { close(bigWrite) }) }}
	})
	_ = p.nc.(*net.TCPConn).SetReadBuffer(8 << 10)
	done := make(chan error, 1)
	go func() {
		big := make([]byte, 4<<20)
		for {
			if err := p.srv.Write(context.Background(), ws.OpBinary, big); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-bigWrite:
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("the writer never reached the socket")
	}
	return p, done
}

// signalConn calls onBig when a write of 64 KiB or more starts.
type signalConn struct {
	net.Conn
	onBig func()
}

func (s *signalConn) Write(p []byte) (int, error) {
	if len(p) >= 64<<10 {
		s.onBig()
	}
	return s.Conn.Write(p)
}

// waitDone waits until c has ended; the test context bounds it.
func waitDone(t *testing.T, c *core.Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("the connection did not end")
	}
}

// returns runs fn on a goroutine and fails the test unless it returns
// within the test context: for calls that must not block.
func returns[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	select {
	case v := <-ch:
		return v
	case <-testCtx(t).Done():
		t.Fatalf("%s did not return", what)
		var zero T
		return zero
	}
}

// busWait waits until every event published so far has been delivered.
func busWait(t *testing.T, b *events.Bus) {
	t.Helper()
	if err := b.Wait(testCtx(t)); err != nil {
		t.Fatalf("bus.Wait: %v", err)
	}
}

// handshake performs the client side of the opening handshake on nc and
// returns the reader to read the server's frames with.
func handshake(t *testing.T, nc net.Conn) *bufio.Reader {
	t.Helper()
	u, _ := url.Parse("ws://example.com/")
	br, _, err := ws.Dialer{}.Upgrade(nc, u)
	if err != nil {
		t.Fatal(err)
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	return br
}

// writeSignal wraps a server's socket to tell when a write enters it.
type writeSignal struct {
	mu sync.Mutex
	ch chan struct{} // closed at the next write, once armed
}

func (w *writeSignal) wrap(nc net.Conn) net.Conn { return &signalWrites{Conn: nc, w: w} }

// arm returns a channel closed when the next write starts.
func (w *writeSignal) arm() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ch = make(chan struct{})
	return w.ch
}

type signalWrites struct {
	net.Conn
	w *writeSignal
}

func (s *signalWrites) Write(p []byte) (int, error) {
	s.w.mu.Lock()
	if s.w.ch != nil {
		close(s.w.ch)
		s.w.ch = nil
	}
	s.w.mu.Unlock()
	return s.Conn.Write(p)
}

// wait waits until ch is closed; the test context bounds it.
func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-testCtx(t).Done():
		t.Fatal("the awaited event never came")
	}
}
