package core_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
)

// Close starts the close handshake and returns; waiting for the end is
// Done's job. These tests run on a fake clock that moves only when told:
// a Close that waited for the handshake (or for the clock) would hang them,
// and the wall-clock guard in returns and waitDone turns such a hang into a
// failure.

// Issue 13, item 1(a): a message handler starts a goroutine that calls
// Close and waits for it. Close used to tell the read loop apart by its
// goroutine id, so from any other goroutine it waited for the handshake,
// which the read loop, blocked in the handler, could never complete: a
// permanent hang whatever CloseTimeout was. Now Close returns at once, the
// handler returns, and the connection ends: by the peer's answer, or after
// CloseTimeout on the fake clock when the peer stays silent.
func TestCloseFromAGoroutineTheHandlerWaitsFor(t *testing.T) {
	for _, answer := range []bool{true, false} {
		name := map[bool]string{true: "peer answers", false: "peer silent"}[answer]
		t.Run(name, func(t *testing.T) {
			clock := clockwork.NewFakeClock()
			closeErr := make(chan error, 1)
			handlerDone := make(chan struct{})
			h := func(ctx context.Context, f core.Frame) error {
				defer close(handlerDone)
				c := core.FromContext(ctx)
				done := make(chan error, 1)
				go func() { done <- c.Close(ws.StatusNormalClosure, "from a goroutine") }()
				select {
				case err := <-done:
					closeErr <- err
				case <-time.After(testTimeout): // wall time: hang guard only
					closeErr <- errors.New("Close from a goroutine the handler waits for did not return")
				}
				return nil
			}
			p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock, Handler: h}})
			p.send(t, masked(ws.NewTextFrame([]byte("close, please"))))
			if err := waitErr(t, closeErr); err != nil {
				t.Fatalf("Close = %v, want nil", err)
			}
			wait(t, handlerDone)
			if code, reason := p.readClose(t); code != ws.StatusNormalClosure || reason != "from a goroutine" {
				t.Fatalf("close frame %d %q", code, reason)
			}
			if answer {
				p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			} else {
				if err := clock.BlockUntilContext(testCtx(t), 1); err != nil { // the close timer
					t.Fatal(err)
				}
				clock.Advance(core.DefaultCloseTimeout)
			}
			waitDone(t, p.srv)
			ce := asClose(t, p.srv.Err())
			if ce.Code != ws.StatusNormalClosure || ce.Remote || errors.Is(ce, core.ErrCloseTimeout) == answer {
				t.Fatalf("cause %+v (answered: %v)", ce, answer)
			}
		})
	}
}

// A handler that calls Close itself and returns: Close returns nil at
// once, and with a silent peer the connection ends after CloseTimeout on
// the fake clock (TestCloseFromHandler has the peer answer).
func TestCloseFromHandlerWithASilentPeer(t *testing.T) {
	clock := clockwork.NewFakeClock()
	closeErr := make(chan error, 1)
	h := func(ctx context.Context, f core.Frame) error {
		closeErr <- core.FromContext(ctx).Close(4000, "bye")
		return nil
	}
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock, Handler: h, CloseTimeout: time.Minute}})
	p.send(t, masked(ws.NewTextFrame([]byte("quit"))))
	if err := waitErr(t, closeErr); err != nil {
		t.Fatalf("Close from the handler = %v", err)
	}
	if code, _ := p.readClose(t); code != 4000 {
		t.Fatalf("close code %d", code)
	}
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	waitDone(t, p.srv)
	if ce := asClose(t, p.srv.Err()); ce.Code != 4000 || !errors.Is(ce, core.ErrCloseTimeout) {
		t.Fatalf("cause %+v", ce)
	}
}

// Close does not write on the caller's goroutine when the writer is free
// either: against a peer that reads nothing (net.Pipe: every write waits
// for the reader), on a fake clock that nobody advances, Close still
// returns at once. The close frame goes out once the peer reads; with the
// peer silent after that, the close timer ends the connection.
func TestCloseDoesNotWaitOnTheSocket(t *testing.T) {
	clock := clockwork.NewFakeClock()
	p := newPipePeer(t, &core.Upgrader{Config: core.Config{Clock: clock}}, nil)
	if err := returns(t, "Close against a peer that does not read", func() error {
		return p.srv.Close(ws.StatusGoingAway, "restart")
	}); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if code, reason := p.readClose(t); code != ws.StatusGoingAway || reason != "restart" {
		t.Fatalf("close frame %d %q", code, reason)
	}
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(core.DefaultCloseTimeout)
	waitDone(t, p.srv)
	if ce := asClose(t, p.srv.Err()); ce.Code != ws.StatusGoingAway || !errors.Is(ce, core.ErrCloseTimeout) {
		t.Fatalf("cause %+v", ce)
	}
}

// Before Serve, Close sends the close frame and releases the socket (no
// one would read the answer): the peer reads the close frame, then the end
// of the stream; Done closes without Serve; Serve called afterwards
// returns the cause at once. Close returns before the peer reads anything.
func TestCloseBeforeServe(t *testing.T) {
	sc, nc := net.Pipe()
	defer nc.Close()
	accepted := make(chan *core.Conn, 1)
	go func() {
		c, err := (&core.Upgrader{Config: core.Config{Clock: clockwork.NewFakeClock()}}).Accept(sc)
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	br := handshake(t, nc)
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	if err := returns(t, "Close before Serve", func() error { return c.Close(4001, "never served") }); err != nil {
		t.Fatalf("Close = %v", err)
	}
	f, err := ws.ReadFrame(br)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("read %v %v, want the close frame", f.Header.OpCode, err)
	}
	if code, reason := ws.ParseCloseFrameData(f.Payload); code != 4001 || reason != "never served" {
		t.Fatalf("close frame %d %q", code, reason)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the close frame: %v, want EOF (the socket released)", err)
	}
	waitDone(t, c)
	want := c.Err()
	if ce := asClose(t, want); ce.Code != 4001 || ce.Remote {
		t.Fatalf("cause %+v", ce)
	}
	if err := returns(t, "Serve after Close", func() error { return c.Serve(context.Background()) }); err != want {
		t.Fatalf("Serve after Close = %v, want the cause %v", err, want)
	}
}

// A close frame handed over while another writer holds the writer still
// goes out: Close returns at once while the write is in progress, and the
// peer receives the whole message, then the close frame.
func TestCloseHandedToTheWriterInProgress(t *testing.T) {
	clock := clockwork.NewFakeClock()
	var w writeSignal
	p := newPipePeer(t, &core.Upgrader{Config: core.Config{Clock: clock}}, w.wrap)
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(i)
	}
	writing := w.arm()
	wrote := make(chan error, 1)
	go func() { wrote <- p.srv.Write(context.Background(), ws.OpBinary, big) }()
	wait(t, writing) // the writer is in the socket, and net.Pipe holds it there until the peer reads
	if err := returns(t, "Close while a write is in progress", func() error {
		return p.srv.Close(ws.StatusNormalClosure, "after the write")
	}); err != nil {
		t.Fatalf("Close = %v", err)
	}
	f := p.readFrame(t)
	if f.Header.OpCode != ws.OpBinary || len(f.Payload) != len(big) || f.Payload[len(big)-1] != big[len(big)-1] {
		t.Fatalf("first frame %v of %d bytes, want the whole message", f.Header.OpCode, len(f.Payload))
	}
	if code, reason := p.readClose(t); code != ws.StatusNormalClosure || reason != "after the write" {
		t.Fatalf("close frame %d %q", code, reason)
	}
	// The writer that held the writer sent the close frame before it left.
	if err := waitErr(t, wrote); err != nil {
		t.Fatalf("the write in progress: %v", err)
	}
	if err := p.srv.WriteText(context.Background(), "too late"); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	if ce := asClose(t, waitErr(t, p.serve)); ce.Code != ws.StatusNormalClosure || ce.Err != nil {
		t.Fatalf("cause %+v, want a clean 1000", ce)
	}
}

// Serve called while a close started before it is still sending its close
// frame (the peer reads nothing) reads nothing, and returns the cause once
// the close timer has closed the socket, on the fake clock.
func TestServeWhileACloseBeforeServeIsUnderWay(t *testing.T) {
	clock := clockwork.NewFakeClock()
	sc, nc := net.Pipe()
	defer nc.Close()
	accepted := make(chan *core.Conn, 1)
	go func() {
		c, err := (&core.Upgrader{Config: core.Config{Clock: clock}}).Accept(sc)
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	handshake(t, nc)
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	if err := returns(t, "Close before Serve", func() error { return c.Close(ws.StatusNormalClosure, "") }); err != nil {
		t.Fatalf("Close = %v", err)
	}
	served := served(c)
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil { // the close timer
		t.Fatal(err)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v while the close frame was still being written", err)
	default:
	}
	clock.Advance(core.DefaultCloseTimeout)
	err := waitErr(t, served)
	if ce := asClose(t, err); ce.Code != ws.StatusNormalClosure || !errors.Is(err, core.ErrCloseTimeout) || err != c.Err() {
		t.Fatalf("Serve = %v, Err() = %v; want the same 1000 whose Err is ErrCloseTimeout", err, c.Err())
	}
}

// Data the peer sends after our close frame, before it has seen it, still
// reaches the handler: the peer counts it as sent (a client's Send
// returned nil for it), so dropping it would lose it.
func TestDataAfterOurCloseIsDelivered(t *testing.T) {
	got := make(chan string, 4)
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Handler: func(_ context.Context, f core.Frame) error {
		got <- string(f.Payload)
		return nil
	}}})
	if err := p.srv.Close(ws.StatusGoingAway, "restart"); err != nil {
		t.Fatal(err)
	}
	// The peer's last messages, written before it read our close frame.
	p.send(t, masked(ws.NewTextFrame([]byte("late 1"))))
	p.send(t, masked(ws.NewBinaryFrame([]byte("late 2"))))
	if code, _ := p.readClose(t); code != ws.StatusGoingAway {
		t.Fatalf("close frame %d", code)
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
	waitDone(t, p.srv)
	close(got)
	var all []string
	for m := range got {
		all = append(all, m)
	}
	if len(all) != 2 || all[0] != "late 1" || all[1] != "late 2" {
		t.Fatalf("handler got %q, want both late messages", all)
	}
	if ce := asClose(t, p.srv.Err()); ce.Code != ws.StatusGoingAway || ce.Err != nil {
		t.Fatalf("cause %+v, want a clean 1001", ce)
	}
}
