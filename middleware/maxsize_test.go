package middleware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/middleware"
)

func TestMaxSizeRejectsBadLimit(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := middleware.MaxSize(n); !errors.Is(err, core.ErrInvalidConfig) {
			t.Errorf("MaxSize(%d): %v", n, err)
		}
	}
}

func TestMaxSizeBoundary(t *testing.T) {
	mw, err := middleware.MaxSize(4)
	if err != nil {
		t.Fatal(err)
	}
	var passed int
	h := core.NewChain(mw).Then(func(context.Context, core.Frame) error { passed++; return nil })
	if err := h(context.Background(), core.Frame{Payload: []byte("1234")}); err != nil {
		t.Fatalf("4 bytes at limit 4: %v", err)
	}
	if err := h(context.Background(), core.Frame{Payload: []byte("12345")}); !errors.Is(err, core.ErrMessageTooBig) {
		t.Fatalf("5 bytes: %v", err)
	}
	if passed != 1 {
		t.Fatalf("handler ran %d times, want 1", passed)
	}
}

// Outbound: the writer gets the error and the connection stays open.
func TestMaxSizeOutboundKeepsConnection(t *testing.T) {
	out, _ := middleware.MaxSize(8)
	echoed := make(chan string, 1)
	echo := func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}
	bus := events.NewBus()
	t.Cleanup(func() { bus.Close(); _ = bus.Wait(testCtx(t)) })
	refusals := make(chan events.Error, 1)
	unsub, err := events.Subscribe(bus, func(e events.Error) { refusals <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	c, _, _ := pair(t,
		core.Config{Handler: echo},
		core.Config{Bus: bus, Outbound: core.NewChain(out), Handler: func(_ context.Context, f core.Frame) error {
			echoed <- string(f.Payload)
			return nil
		}})
	if err := c.WriteText(context.Background(), "way too long"); !errors.Is(err, core.ErrMessageTooBig) {
		t.Fatalf("outbound: %v", err)
	}
	if err := bus.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-refusals:
		if e.Fatal || !errors.Is(e.Err, core.ErrMessageTooBig) {
			t.Fatalf("Error event %+v, want a non-fatal ErrMessageTooBig", e)
		}
	default:
		t.Fatal("the refusal published no Error event")
	}
	if err := c.WriteText(context.Background(), "short"); err != nil {
		t.Fatalf("next write: %v", err)
	}
	if got := <-echoed; got != "short" {
		t.Fatalf("echo %q", got)
	}
}

// Inbound: an oversized message closes the connection with 1009.
func TestMaxSizeInboundCloses(t *testing.T) {
	in, _ := middleware.MaxSize(8)
	c, cliErr, srvErr := pair(t, core.Config{Inbound: core.NewChain(in)}, core.Config{})
	if err := c.WriteText(context.Background(), "way too long"); err != nil {
		t.Fatal(err)
	}
	var ce *core.CloseError
	if err := wait(t, cliErr); !errors.As(err, &ce) || ce.Code != ws.StatusMessageTooBig || !ce.Remote {
		t.Fatalf("client saw %v, want remote 1009", err)
	}
	if err := wait(t, srvErr); !errors.Is(err, core.ErrMessageTooBig) {
		t.Fatalf("server cause %v", err)
	}
}
