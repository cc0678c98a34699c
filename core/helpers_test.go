package core_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/tetherws/tether/core"
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
	conns chan *core.Conn
	errs  chan error
	wg    sync.WaitGroup
	mu    sync.Mutex
	all   []*core.Conn
}

func newTCPServer(t *testing.T, up *core.Upgrader) *tcpServer {
	t.Helper()
	s := &tcpServer{conns: make(chan *core.Conn, 16), errs: make(chan error, 16)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		c, err := up.Upgrade(w, r)
		if err != nil {
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
// valid or not, over loopback TCP, to a tether server accepted with up.
type rawPeer struct {
	nc    net.Conn
	br    *bufio.Reader
	srv   *core.Conn
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
	accepted := make(chan *core.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			acceptErr <- err
			return
		}
		if wrap != nil {
			nc = wrap(nc)
		}
		c, err := up.Accept(nc)
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/")
	br, _, err := ws.Dialer{}.Upgrade(nc, u)
	if err != nil {
		t.Fatal(err)
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	p := &rawPeer{nc: nc, br: br}
	select {
	case p.srv = <-accepted:
	case err := <-acceptErr:
		t.Fatal(err)
	}
	p.serve = served(p.srv)
	// Wait until the read loop runs: it answers a ping.
	p.send(t, masked(ws.NewPingFrame([]byte("ready?"))))
	if f := p.readFrame(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "ready?" {
		t.Fatalf("server did not answer the readiness ping: %v %q", f.Header.OpCode, f.Payload)
	}
	t.Cleanup(func() {
		nc.Close()
		<-p.srv.Done()
	})
	return p
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
