package core_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
)

// A peer that never answers the close frame: Close returns at once, and
// the connection ends after CloseTimeout on the injected clock, not on the
// wall clock; until then Err is nil, and then a *CloseError whose Err is
// ErrCloseTimeout.
func TestCloseTimeoutOnFakeClock(t *testing.T) {
	clock := clockwork.NewFakeClock()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock, CloseTimeout: 7 * time.Second}})

	if err := returns(t, "Close", func() error { return p.srv.Close(ws.StatusNormalClosure, "bye") }); err != nil {
		t.Fatalf("Close = %v, want nil: it started the close", err)
	}
	if code, _ := p.readClose(t); code != ws.StatusNormalClosure { // the peer reads the close frame and stays silent
		t.Fatalf("code %d", code)
	}
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil { // the close timer is armed
		t.Fatal(err)
	}
	clock.Advance(7*time.Second - time.Nanosecond)
	// The timer is still armed 1 ns before the timeout: had it fired, this
	// would wait in vain.
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatalf("the close timer fired before 7 s: %v", err)
	}
	select {
	case <-p.srv.Done():
		t.Fatalf("the connection ended before the timeout: %v", p.srv.Err())
	default:
	}
	if err := p.srv.Err(); err != nil {
		t.Fatalf("Err() = %v before the end, want nil", err)
	}
	if err := p.srv.Close(ws.StatusNormalClosure, ""); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	clock.Advance(time.Nanosecond)
	waitDone(t, p.srv)
	err := p.srv.Err()
	if ce := asClose(t, err); ce.Code != ws.StatusNormalClosure || ce.Reason != "bye" || ce.Remote || !errors.Is(ce.Err, core.ErrCloseTimeout) {
		t.Fatalf("Err() = %v, want local 1000 whose Err is ErrCloseTimeout", err)
	}
	if serr := waitErr(t, p.serve); serr != err {
		t.Fatalf("Serve = %v, Err() = %v", serr, err)
	}
}

// A writer blocked on a peer that stopped reading cannot hold Close: Close
// hands the close frame over and returns at once; the close timer fires on
// the fake clock, the socket is closed, the writer gets an error, and the
// cause says the peer never answered.
func TestCloseUnblocksStuckWriter(t *testing.T) {
	clock := clockwork.NewFakeClock()
	p, writerDone := newStuckPeer(t, &core.Upgrader{Config: core.Config{Clock: clock}})
	if err := returns(t, "Close", func() error { return p.srv.Close(ws.StatusGoingAway, "") }); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(core.DefaultCloseTimeout)
	if err := waitErr(t, writerDone); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("stuck writer got %v, want ErrClosed", err)
	}
	err := waitErr(t, p.serve)
	if ce := asClose(t, err); ce.Code != ws.StatusGoingAway || !errors.Is(err, core.ErrCloseTimeout) {
		t.Fatalf("cause %v, want 1001 timed out: the peer never read the close frame", err)
	}
}

// Close called from a handler does not wait for the handler itself: it
// sends the close frame, returns, and the read loop completes the
// handshake.
func TestCloseFromHandler(t *testing.T) {
	closeErr := make(chan error, 1)
	h := func(ctx context.Context, f core.Frame) error {
		closeErr <- core.FromContext(ctx).Close(4000, string(f.Payload))
		return nil
	}
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Handler: h}})
	p.send(t, masked(ws.NewTextFrame([]byte("quit"))))
	if err := waitErr(t, closeErr); err != nil {
		t.Fatalf("Close from handler: %v", err)
	}
	code, reason := p.readClose(t)
	if code != 4000 || reason != "quit" {
		t.Fatalf("close frame %d %q", code, reason)
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(4000, ""))))
	if ce := asClose(t, waitErr(t, p.serve)); ce.Code != 4000 || ce.Remote {
		t.Fatalf("cause %+v", ce)
	}
}

// Cancelling Serve's context closes the connection with 1001.
func TestServeContextCancel(t *testing.T) {
	srv := newTCPServer(t, &core.Upgrader{})
	c, err := core.Dial(testCtx(t), srv.wsURL(), core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	srv.conn(t)
	cancel()
	if ce := asClose(t, waitErr(t, done)); ce.Code != ws.StatusGoingAway {
		t.Fatalf("cause %+v, want 1001", ce)
	}
	if ce := asClose(t, waitErr(t, srv.errs)); ce.Code != ws.StatusGoingAway || !ce.Remote {
		t.Fatalf("server saw %+v", ce)
	}
}

// A client that opens a TCP connection and never finishes its request
// (slow loris) is dropped after HandshakeTimeout on the injected clock.
func TestAcceptHandshakeTimeout(t *testing.T) {
	clock := clockwork.NewFakeClock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	up := &core.Upgrader{Config: core.Config{Clock: clock}, HandshakeTimeout: 3 * time.Second}
	res := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			res <- err
			return
		}
		_, err = up.Accept(nc)
		res <- err
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil { // and nothing more
		t.Fatal(err)
	}
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	if err := waitErr(t, res); !errors.Is(err, core.ErrHandshakeTimeout) {
		t.Fatalf("Accept = %v, want ErrHandshakeTimeout", err)
	}
}

// A server that accepts TCP but never answers the upgrade: Dial gives up
// after HandshakeTimeout on the injected clock.
func TestDialHandshakeTimeout(t *testing.T) {
	clock := clockwork.NewFakeClock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			held <- nc
		}
	}()
	res := make(chan error, 1)
	go func() {
		d := &core.Dialer{Config: core.Config{Clock: clock}, HandshakeTimeout: 2 * time.Second}
		_, err := d.Dial(context.Background(), "ws://"+ln.Addr().String()+"/")
		res <- err
	}()
	// The TCP connection is up and the server says nothing.
	select {
	case nc := <-held:
		defer nc.Close()
	case <-testCtx(t).Done():
		t.Fatal("no TCP connection")
	}
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if err := waitErr(t, res); !errors.Is(err, core.ErrHandshakeTimeout) {
		t.Fatalf("Dial = %v, want ErrHandshakeTimeout", err)
	}
}

// The peer closes while a writer is stuck on it (the peer stopped reading):
// answering its close frame needs the write lock, so the answer is bounded
// by the close timer on the injected clock too.
func TestPeerCloseWhileWriterStuck(t *testing.T) {
	clock := clockwork.NewFakeClock()
	p, writerDone := newStuckPeer(t, &core.Upgrader{Config: core.Config{Clock: clock}})
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye"))))
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil { // the answer waits on the close timer
		t.Fatal(err)
	}
	select {
	case err := <-p.serve:
		t.Fatalf("Serve returned %v before the close timer fired", err)
	default:
	}
	clock.Advance(core.DefaultCloseTimeout)
	err := waitErr(t, p.serve)
	if ce := asClose(t, err); ce.Code != ws.StatusGoingAway || !ce.Remote {
		t.Fatalf("cause %+v, want remote 1001", ce)
	}
	if err := waitErr(t, writerDone); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("writer: %v", err)
	}
}

// The handler's ctx is done as soon as the connection starts closing, so a
// handler waiting on it (a slow backend call) is released by Close, and the
// close completes.
func TestHandlerCtxDoneWhenClosing(t *testing.T) {
	entered := make(chan struct{})
	released := make(chan error, 1)
	h := func(ctx context.Context, f core.Frame) error {
		close(entered)
		<-ctx.Done()
		released <- ctx.Err()
		return nil
	}
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Handler: h}})
	p.send(t, masked(ws.NewTextFrame([]byte("slow"))))
	<-entered
	if err := returns(t, "Close", func() error { return p.srv.Close(ws.StatusGoingAway, "") }); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := waitErr(t, released); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx: %v", err)
	}
	if code, _ := p.readClose(t); code != ws.StatusGoingAway {
		t.Fatalf("code %d", code)
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
	if ce := asClose(t, waitErr(t, p.serve)); ce.Code != ws.StatusGoingAway || ce.Err != nil {
		t.Fatalf("cause %+v, want a clean 1001", ce)
	}
}

// A server that sends a refusal's status line and then stalls before its
// headers cannot hold a dial past HandshakeTimeout: the timer still bounds
// the read of the refusal's headers.
func TestDialRefusalThatStallsTimesOut(t *testing.T) {
	ctx := testCtx(t)
	clock := clockwork.NewFakeClock()
	client, server := net.Pipe()
	defer server.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
			return
		}
		// net.Pipe is synchronous: once Write returns, the client has read the line.
		_, _ = server.Write([]byte("HTTP/1.1 503 Service Unavailable\r\n"))
	}()
	d := &core.Dialer{Config: core.Config{Clock: clock}, HandshakeTimeout: time.Second,
		NetDial: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
	res := make(chan error, 1)
	go func() { _, err := d.Dial(ctx, "ws://example.com/"); res <- err }()
	<-served // the status line is in; the headers never come
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("Dial succeeded")
		}
		t.Logf("Dial: %v", err)
	case <-ctx.Done():
		t.Fatal("Dial still blocked after HandshakeTimeout: the refusal's headers are not bounded")
	}
}
