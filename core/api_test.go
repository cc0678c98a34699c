package core_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// A middleware that returns a nil Handler is refused when the connection
// is configured, and Chain.Then turns it into an error, not a panic.
func TestNilHandlerFromMiddleware(t *testing.T) {
	broken := func(core.Handler) core.Handler { return nil }
	h := core.NewChain(broken).Then(nil)
	if err := h(context.Background(), core.Frame{}); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Then: %v", err)
	}
	if _, err := core.Dial(context.Background(), "ws://127.0.0.1:1/", core.Config{Inbound: core.NewChain(broken)}); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Dial: %v", err)
	}
	if _, err := (&core.Upgrader{Config: core.Config{Outbound: core.NewChain(broken)}}).Accept(nil); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Accept: %v", err)
	}
}

// Nil arguments get an error, not a panic.
func TestNilArguments(t *testing.T) {
	if _, err := (&core.Upgrader{}).Accept(nil); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Accept(nil): %v", err)
	}
	if _, err := (&core.Dialer{}).Dial(nil, "ws://127.0.0.1:1/"); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Dial(nil ctx): %v", err)
	}
	p := newRawPeer(t, &core.Upgrader{})
	if err := p.srv.Write(nil, ws.OpText, []byte("x")); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Write(nil ctx): %v", err)
	}
	if err := p.h.Ping(nil, nil); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Ping(nil ctx): %v", err)
	}
	if err := p.h.WriteDirect(nil, ws.OpText, []byte("x")); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("WriteDirect(nil ctx): %v", err)
	}
	if err := p.srv.Serve(nil); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Serve(nil ctx): %v", err)
	}
	if err := p.srv.Serve(context.Background()); !errors.Is(err, core.ErrAlreadyServing) {
		t.Fatalf("second Serve: %v", err)
	}
	if err := p.h.OnControl(func(ws.OpCode, []byte) {}); !errors.Is(err, core.ErrAttachOnly) {
		t.Fatalf("OnControl after Attach: %v", err)
	}
}

// Connected comes first and Disconnected last, whatever the caller does
// around Serve: a write before Serve, a failure before Serve, a message
// written while the connection closes.
func TestEventOrderAroundServe(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	var mu sync.Mutex
	byConn := map[string][]string{}
	add := func(id, s string) { mu.Lock(); byConn[id] = append(byConn[id], s); mu.Unlock() }
	for _, sub := range []func() (func(), error){
		func() (func(), error) {
			return events.Subscribe(bus, func(e events.Connected) { add(e.ConnID, "connected") })
		},
		func() (func(), error) {
			return events.Subscribe(bus, func(e events.MessageOut) { add(e.ConnID, "out") })
		},
		func() (func(), error) {
			return events.Subscribe(bus, func(e events.Disconnected) { add(e.ConnID, "disconnected") })
		},
	} {
		u, err := sub()
		if err != nil {
			t.Fatal(err)
		}
		defer u()
	}
	srv := newTCPServer(t, &core.Upgrader{})

	// A write before Serve, then Serve, then many writes racing a close.
	c, err := core.Dial(testCtx(t), srv.wsURL(), core.Config{Bus: bus, ID: "early-writer"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteText(context.Background(), "before serve"); err != nil {
		t.Fatal(err)
	}
	done := served(c)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for c.WriteText(context.Background(), "racing") == nil {
			}
		})
	}
	_ = c.Close(ws.StatusNormalClosure, "")
	wg.Wait()
	waitErr(t, done)

	// A connection closed before Serve was ever called.
	c2, err := core.Dial(testCtx(t), srv.wsURL(), core.Config{Bus: bus, ID: "never-served"})
	if err != nil {
		t.Fatal(err)
	}
	_ = c2.Close(ws.StatusNormalClosure, "")
	waitDone(t, c2)
	busWait(t, bus)

	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{"early-writer", "never-served"} {
		evs := byConn[id]
		if len(evs) < 2 || evs[0] != "connected" || evs[len(evs)-1] != "disconnected" {
			t.Fatalf("%s: events %v, want connected first and disconnected last", id, evs)
		}
		for _, e := range evs[1 : len(evs)-1] {
			if e != "out" {
				t.Fatalf("%s: unexpected %q in the middle of %v", id, e, evs)
			}
		}
	}
	if n := len(byConn["early-writer"]); n < 3 {
		t.Fatalf("early-writer: %d events, want at least one MessageOut", n)
	}
}

// *core.Conn keeps the methods a user of a connection needs, at most 12
// (issue 13: it had 23); what only a plugin may do is on the Handle. A
// 13th method fails this test: put it on the Handle, or remove one.
func TestConnHasAtMost12Methods(t *testing.T) {
	ct := reflect.TypeFor[*core.Conn]()
	var names []string
	for m := range ct.Methods() {
		names = append(names, m.Name)
	}
	if len(names) > 12 {
		t.Fatalf("*core.Conn has %d exported methods, at most 12 allowed: %v", len(names), names)
	}
	t.Logf("*core.Conn: %d methods %v", len(names), names)
}

// FromContext finds the connection from its handler's ctx and from any ctx
// derived from it, and returns nil for any other ctx.
func TestFromContext(t *testing.T) {
	found := make(chan [2]*core.Conn, 1)
	h := func(ctx context.Context, f core.Frame) error {
		derived, cancel := context.WithCancel(context.WithValue(ctx, keyA{}, 1))
		defer cancel()
		found <- [2]*core.Conn{core.FromContext(ctx), core.FromContext(derived)}
		return nil
	}
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Handler: h}})
	p.send(t, masked(ws.NewTextFrame([]byte("x"))))
	got := waitResult(t, found)
	if got[0] != p.srv || got[1] != p.srv {
		t.Fatalf("FromContext = %p, %p from the handler's ctx and a derived one; want %p", got[0], got[1], p.srv)
	}
	if c := core.FromContext(context.Background()); c != nil {
		t.Fatalf("FromContext(Background) = %p, want nil", c)
	}
}

// Every method of Conn may be called from any goroutine, concurrently
// (checked by -race), while the connection runs and while it closes.
func TestEveryMethodIsSafeConcurrently(t *testing.T) {
	srv := newTCPServer(t, &core.Upgrader{})
	c, h := dialWithHandle(t, srv.wsURL(), core.Config{})
	if err := h.SetValue(keyA{}, "v"); err != nil {
		t.Fatal(err)
	}
	done := served(c)
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = c.WriteText(ctx, "x")
				_ = c.Write(ctx, ws.OpBinary, []byte{byte(i)})
				_, _, _, _, _ = c.ID(), c.Client(), c.Subprotocol(), c.LocalAddr(), c.RemoteAddr()
				_, _ = c.Err(), c.Value(keyA{})
				select {
				case <-c.Done():
				default:
				}
				_ = h.Ping(ctx, nil)
				_ = h.WriteDirect(ctx, ws.OpText, []byte("d"))
				_ = h.SetValue(keyB{}, i)
				_ = h.Activity()
			}
		})
	}
	var closes sync.WaitGroup
	results := make(chan error, 4)
	for range 4 {
		closes.Go(func() { results <- c.Close(ws.StatusNormalClosure, "") })
	}
	closes.Wait()
	close(results)
	started := 0
	for err := range results {
		switch {
		case err == nil:
			started++
		case !errors.Is(err, core.ErrClosed):
			t.Errorf("Close = %v", err)
		}
	}
	if started != 1 {
		t.Fatalf("%d of 4 concurrent Closes started the close, want exactly 1", started)
	}
	waitErr(t, done)
	close(stop)
	wg.Wait()
}
