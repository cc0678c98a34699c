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
