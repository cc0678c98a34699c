package tether_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
)

// Upgrade with an invalid option answers 500 and returns the error; with
// valid options it hands back a connection configured by them.
func TestUpgrade(t *testing.T) {
	got := make(chan string, 1)
	served := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts := []tether.Option{tether.WithHandler(func(_ context.Context, f core.Frame) error {
			got <- string(f.Payload)
			return nil
		})}
		if r.URL.Path == "/bad" {
			opts = append(opts, tether.WithMaxMessageSize(-1))
		}
		c, err := tether.Upgrade(w, r, opts...)
		if err != nil {
			served <- err
			return
		}
		served <- c.Serve(r.Context())
	}))
	defer srv.Close()
	base := "ws" + strings.TrimPrefix(srv.URL, "http")

	_, err := core.Dial(context.Background(), base+"/bad", core.Config{})
	var he *core.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusInternalServerError {
		t.Fatalf("dial /bad: %v, want HTTP 500", err)
	}
	if err := <-served; !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Upgrade with a bad option: %v", err)
	}

	c, err := core.Dial(context.Background(), base+"/good", core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(context.Background()) }()
	if err := c.WriteText(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "hi" {
		t.Fatalf("server got %q", m)
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	<-done
	if core.CloseStatus(<-served) != ws.StatusNormalClosure {
		t.Fatal("server did not see the normal close")
	}
}

// Handler's ServeHTTP returns once the connection is upgraded; the
// connection keeps being served on a goroutine of its own, with the
// request context's values, and that goroutine ends with the connection.
func TestHandlerServesOnItsOwnGoroutine(t *testing.T) {
	sawServer := make(chan bool, 1)
	h, err := tether.Handler(tether.WithHandler(func(ctx context.Context, f core.Frame) error {
		sawServer <- ctx.Value(http.ServerContextKey) != nil
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}))
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		close(returned)
	}))
	defer srv.Close()
	echoed := make(chan string, 1)
	c, err := core.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{
		Handler: func(_ context.Context, f core.Frame) error { echoed <- string(f.Payload); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(context.Background()) }()
	if err := c.WriteText(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	if m := <-echoed; m != "hi" {
		t.Fatalf("echo %q", m)
	}
	if !<-sawServer {
		t.Error("the handler's ctx lacks the request context's values")
	}
	select {
	case <-returned:
	default:
		t.Error("ServeHTTP still runs while the connection is open")
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	<-done
}
