package core_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
)

// A peer that never answers the close frame: Close gives up after
// CloseTimeout on the injected clock, not on the wall clock.
func TestCloseTimeoutOnFakeClock(t *testing.T) {
	clock := clockwork.NewFakeClock()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock, CloseTimeout: 7 * time.Second}})

	closed := make(chan error, 1)
	go func() { closed <- p.srv.Close(ws.StatusNormalClosure, "bye") }()
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
	case err := <-closed:
		t.Fatalf("Close returned %v before the timeout", err)
	default:
	}
	clock.Advance(time.Nanosecond)
	if err := waitErr(t, closed); !errors.Is(err, core.ErrCloseTimeout) {
		t.Fatalf("Close = %v, want ErrCloseTimeout", err)
	}
	err := waitErr(t, p.serve)
	if ce := asClose(t, err); ce.Code != ws.StatusNormalClosure || !errors.Is(err, core.ErrCloseTimeout) {
		t.Fatalf("cause %v", err)
	}
}

// A writer blocked on a peer that stopped reading cannot hold Close: the
// close timer fires on the fake clock, the socket is closed, the writer
// gets an error.
func TestCloseUnblocksStuckWriter(t *testing.T) {
	clock := clockwork.NewFakeClock()
	p, writerDone := newStuckPeer(t, &core.Upgrader{Config: core.Config{Clock: clock}})
	closed := make(chan error, 1)
	go func() { closed <- p.srv.Close(ws.StatusGoingAway, "") }()
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(core.DefaultCloseTimeout)
	if err := waitErr(t, closed); err == nil {
		t.Fatalf("Close reported a clean handshake with a peer that never read; cause %v", p.srv.Err())
	}
	if err := waitErr(t, writerDone); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("stuck writer got %v, want ErrClosed", err)
	}
	waitErr(t, p.serve)
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
	closed := make(chan error, 1)
	go func() { closed <- p.srv.Close(ws.StatusGoingAway, "") }()
	if err := waitErr(t, released); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx: %v", err)
	}
	if code, _ := p.readClose(t); code != ws.StatusGoingAway {
		t.Fatalf("code %d", code)
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
	if err := waitErr(t, closed); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
