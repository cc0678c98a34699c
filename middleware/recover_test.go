package middleware_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/middleware"
)

func TestRecoverTurnsPanicIntoError(t *testing.T) {
	boom := func(context.Context, core.Frame) error { panic("boom") }
	h := core.NewChain(middleware.Recover()).Then(boom)
	err := h(context.Background(), core.Frame{Op: ws.OpText})
	if !errors.Is(err, middleware.ErrPanic) {
		t.Fatalf("got %v, want ErrPanic", err)
	}
	var pe *middleware.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "recover_test.go") {
		t.Fatalf("PanicError %+v lacks the value or the stack", pe)
	}
	// A panic with an error value unwraps to it.
	h = core.NewChain(middleware.Recover()).Then(func(context.Context, core.Frame) error { panic(io.ErrClosedPipe) })
	if err := h(context.Background(), core.Frame{}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("got %v", err)
	}
	// No panic, no change.
	h = core.NewChain(middleware.Recover()).Then(func(context.Context, core.Frame) error { return io.EOF })
	if err := h(context.Background(), core.Frame{}); err != io.EOF {
		t.Fatalf("got %v", err)
	}
}

// On a real connection, a panicking handler closes the connection with
// 1011 and the process lives on; the panic's text does not reach the peer.
func TestRecoverOnConnection(t *testing.T) {
	boom := func(context.Context, core.Frame) error { panic("secret detail") }
	c, cliErr, srvErr := pair(t,
		core.Config{Inbound: core.NewChain(middleware.Recover()), Handler: boom},
		core.Config{})
	if err := c.WriteText(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	ce := new(core.CloseError)
	if err := wait(t, cliErr); !errors.As(err, &ce) || ce.Code != ws.StatusInternalServerError || !ce.Remote {
		t.Fatalf("client saw %v, want remote 1011", err)
	}
	if strings.Contains(ce.Reason, "secret") {
		t.Fatalf("panic text leaked to the peer: %q", ce.Reason)
	}
	if err := wait(t, srvErr); !errors.Is(err, middleware.ErrPanic) {
		t.Fatalf("server cause %v, want ErrPanic", err)
	}
}

func BenchmarkRecover(b *testing.B) {
	h := core.NewChain(middleware.Recover()).Then(func(context.Context, core.Frame) error { return nil })
	ctx := context.Background()
	f := core.Frame{Op: ws.OpBinary, Payload: make([]byte, 16)}
	b.ReportAllocs()
	for b.Loop() {
		_ = h(ctx, f)
	}
}
