package core_test

import (
	"context"
	"errors"
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
