package core

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
)

// serveEcho serves n in-memory frames through an echoing connection built
// from cfg, and returns the heap allocations the whole run made.
func serveEcho(t *testing.T, cfg Config, n int) uint64 {
	t.Helper()
	mc := newMemConn(16, n, 1)
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var c *Conn
	cfg.Handler = func(ctx context.Context, f Frame) error { return c.Write(ctx, f.Op, f.Payload) }
	if c, err = newConn(mc, nil, nil, false, "", cfg); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_ = c.Serve(context.Background()) // returns at io.EOF after n frames
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// Recovering panics (Config.OnPanic) costs no allocation per message: the
// allocations of a run do not grow with the number of messages.
func TestOnPanicAllocatesNothingPerMessage(t *testing.T) {
	cfg := Config{OnPanic: func(*Conn, any, []byte) {}}
	small, big := serveEcho(t, cfg, 100), serveEcho(t, cfg, 10100)
	if big > small+100 { // 10000 more messages; GC bookkeeping may add a few
		t.Fatalf("%d allocations for 100 messages, %d for 10100", small, big)
	}
}

// With OnPanic, a panic of the inbound chain closes the connection with
// 1011 (the reason does not carry the panic's text), OnPanic sees the
// value and the stack, and the Error event's Err is a *PanicError.
func TestOnPanicRecoversAndCloses(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	errs := make(chan error, 4)
	unsub, _ := events.Subscribe(bus, func(e events.Error) { errs <- e.Err })
	defer unsub()
	type seen struct {
		v     any
		stack int
	}
	got := make(chan seen, 1)
	cfg := Config{Bus: bus, OnPanic: func(c *Conn, v any, stack []byte) { got <- seen{v, len(stack)} }}
	cfg, _ = cfg.withDefaults()
	cfg.Handler = func(context.Context, Frame) error { panic("handler bug") }
	mc := newMemConn(16, 1, 1)
	c, err := newConn(mc, nil, nil, false, "", cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Serve(context.Background())
	if s := <-got; s.v != "handler bug" || s.stack == 0 {
		t.Fatalf("OnPanic saw %+v", s)
	}
	var ce *CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != ws.StatusInternalServerError || ce.Reason != "internal error" {
		t.Fatalf("cause %v, want 1011 with reason internal error", c.Err())
	}
	var pe *PanicError
	if !errors.Is(c.Err(), ErrPanic) || !errors.As(c.Err(), &pe) || pe.Value != "handler bug" {
		t.Fatalf("cause %v does not carry the panic", c.Err())
	}
	_ = bus.Wait(context.Background())
	if err := <-errs; !errors.Is(err, ErrPanic) {
		t.Fatalf("Error event %v", err)
	}
}
