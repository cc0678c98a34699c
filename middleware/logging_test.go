package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/middleware"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoggingLogsMetadataNeverPayload(t *testing.T) {
	var out syncBuf
	l := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	refuse := errors.New("nope")
	calls := 0
	h := core.NewChain(middleware.Logging(l, middleware.Inbound)).Then(func(context.Context, core.Frame) error {
		calls++
		if calls == 2 {
			return refuse
		}
		return nil
	})
	_ = h(context.Background(), core.Frame{Op: ws.OpText, Payload: []byte("password=hunter2")})
	if err := h(context.Background(), core.Frame{Op: ws.OpBinary, Payload: []byte{1, 2, 3}}); err != refuse {
		t.Fatalf("error not passed through: %v", err)
	}
	s := out.String()
	for _, want := range []string{"level=DEBUG", "dir=in", "op=text", "bytes=16", "level=WARN", "op=binary", "bytes=3", "err=nope"} {
		if !strings.Contains(s, want) {
			t.Errorf("log lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "hunter2") {
		t.Fatalf("payload logged:\n%s", s)
	}
}

// On a connection, log lines carry the connection's id.
func TestLoggingCarriesConnID(t *testing.T) {
	var out syncBuf
	l := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _, srvErr := pair(t,
		core.Config{ID: "srv-42", Inbound: core.NewChain(middleware.Logging(l, middleware.Inbound))},
		core.Config{})
	if err := c.WriteText(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	_ = c.Close(ws.StatusNormalClosure, "") // the server handles "hi" before the close frame
	wait(t, srvErr)
	if s := out.String(); !strings.Contains(s, "conn=srv-42") {
		t.Fatalf("no conn id in %q", s)
	}
}

// With Debug disabled, a message costs no allocation.
func TestLoggingDisabledAllocatesNothing(t *testing.T) {
	l := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := core.NewChain(middleware.Logging(l, middleware.Outbound)).Then(func(context.Context, core.Frame) error { return nil })
	ctx := context.Background()
	f := core.Frame{Op: ws.OpText, Payload: []byte("x")}
	if a := testing.AllocsPerRun(1000, func() { _ = h(ctx, f) }); a != 0 {
		t.Fatalf("%v allocations per message", a)
	}
}
