package core_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// After a write failed on a reset socket, every later Write matches
// ErrClosed, as documented.
func TestWritesAfterFailedWriteMatchErrClosed(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan *core.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		if c, err := (&core.Upgrader{Config: core.Config{Bus: bus}}).Accept(nc); err == nil {
			acc <- c
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := core.ParseURL("ws://" + ln.Addr().String() + "/")
	if _, _, err := (ws.Dialer{}).Upgrade(nc, u); err != nil {
		t.Fatal(err)
	}
	srv := <-acc
	errs := make(chan events.Error, 4)
	unsub, err := events.Subscribe(bus, func(e events.Error) { errs <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	_ = nc.(*net.TCPConn).SetLinger(0)
	_ = nc.Close() // RST
	var first error
	for i := 0; i < 100000 && first == nil; i++ { // until the reset is seen: bounded in count
		first = srv.Write(context.Background(), ws.OpBinary, make([]byte, 1000))
	}
	if !errors.Is(first, core.ErrClosed) {
		t.Fatalf("first failed Write: %v, want ErrClosed", first)
	}
	if second := srv.Write(context.Background(), ws.OpBinary, []byte("x")); !errors.Is(second, core.ErrClosed) {
		t.Fatalf("Write after a failed write: %v, want ErrClosed", second)
	}
	waitDone(t, srv)
	busWait(t, bus)
	select {
	case e := <-errs:
		if !e.Fatal || !strings.Contains(e.Err.Error(), "write failed") {
			t.Fatalf("Error event %+v, want a fatal write failure", e)
		}
	default:
		t.Fatal("a failed write published no Error event")
	}
}

// The peer drops TCP without a close frame; writes after that fail with
// ErrClosed, never succeed, and publish nothing after Disconnected.
func TestWritesAfterPeerVanishedFailQuietly(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	l := recordAll(t, bus)
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus}})
	_ = p.nc.Close()
	waitDone(t, p.srv)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if err := p.srv.WriteText(context.Background(), "late"); !errors.Is(err, core.ErrClosed) {
					t.Errorf("Write after Done: %v, want ErrClosed", err)
					return
				}
			}
		})
	}
	wg.Wait()
	busWait(t, bus)
	if got := l.snapshot(); got[len(got)-1] != "disconnected" {
		t.Fatalf("events %v: Disconnected is not last", got)
	}
}

// errRefused is what the outbound middleware of the tests below refuses
// the message "refuse" with.
var errRefused = errors.New("refused by policy")

// refuseOut refuses "refuse" with errRefused and "close" with a
// *CloseError (4002 "closed by middleware").
func refuseOut(next core.Handler) core.Handler {
	return func(ctx context.Context, f core.Frame) error {
		switch string(f.Payload) {
		case "refuse":
			return errRefused
		case "close":
			return &core.CloseError{Code: 4002, Reason: "closed by middleware"}
		}
		return next(ctx, f)
	}
}

// An error from an outbound middleware is returned to the writer as is and
// leaves the connection open (a non-fatal Error event says so), unless it
// is a *CloseError, which closes the connection with its code. Once the
// close started, Write returns ErrClosed.
func TestOutboundMiddlewareErrors(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	errs := make(chan events.Error, 8)
	unsub, err := events.Subscribe(bus, func(e events.Error) { errs <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus, Outbound: core.NewChain(refuseOut)}})
	ctx := context.Background()

	if err := p.srv.WriteText(ctx, "refuse"); !errors.Is(err, errRefused) {
		t.Fatalf("Write = %v, want the middleware's error", err)
	}
	if err := p.srv.WriteText(ctx, "still open"); err != nil {
		t.Fatalf("Write after a refusal: %v", err)
	}
	if f := p.readFrame(t); string(f.Payload) != "still open" {
		t.Fatalf("peer got %q", f.Payload)
	}
	busWait(t, bus)
	if e := <-errs; !errors.Is(e.Err, errRefused) || e.Fatal {
		t.Fatalf("Error event %+v, want a non-fatal refusal", e)
	}

	err = p.srv.WriteText(ctx, "close")
	if ce := asClose(t, err); ce.Code != 4002 {
		t.Fatalf("Write = %v, want the middleware's *CloseError", err)
	}
	if code, reason := p.readClose(t); code != 4002 || reason != "closed by middleware" {
		t.Fatalf("close frame %d %q", code, reason)
	}
	if err := p.srv.WriteText(ctx, "late"); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Write once closing: %v, want ErrClosed", err)
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(4002, ""))))
	if ce := asClose(t, waitErr(t, p.serve)); ce.Code != 4002 || ce.Remote {
		t.Fatalf("cause %+v, want local 4002", ce)
	}
	busWait(t, bus)
	if e := <-errs; e.Err == nil || core.CloseStatus(e.Err) != 4002 || !e.Fatal {
		t.Fatalf("Error event %+v, want a fatal 4002", e)
	}
}

// Writes after the connection ended publish nothing after Disconnected,
// even when an outbound middleware refuses them with its own error or a
// *CloseError: Disconnected is the connection's last event.
func TestRefusedWritesAfterTheEndPublishNothing(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	l := recordAll(t, bus)
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus, Outbound: core.NewChain(refuseOut)}})
	_ = p.nc.Close()
	waitDone(t, p.srv)
	if err := p.srv.WriteText(context.Background(), "refuse"); !errors.Is(err, errRefused) {
		t.Fatalf("Write = %v, want the middleware's error", err)
	}
	if err := p.srv.WriteText(context.Background(), "close"); core.CloseStatus(err) != 4002 {
		t.Fatalf("Write = %v, want the middleware's *CloseError", err)
	}
	busWait(t, bus)
	if got := l.snapshot(); got[len(got)-1] != "disconnected" {
		t.Fatalf("events %v: Disconnected is not last", got)
	}
	if ce := asClose(t, p.srv.Err()); ce.Code != ws.StatusAbnormalClosure {
		t.Fatalf("cause %+v changed after the end", ce)
	}
}

// Text payloads are not checked for UTF-8 on the way out: sending valid
// text is the caller's job, and the bytes go out as given.
func TestWriteTextIsNotChecked(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	if err := p.srv.WriteText(context.Background(), "ok\xff"); err != nil {
		t.Fatal(err)
	}
	if f := p.readFrame(t); f.Header.OpCode != ws.OpText || string(f.Payload) != "ok\xff" {
		t.Fatalf("peer got %v %q", f.Header.OpCode, f.Payload)
	}
}
