package tether_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
)

// ServerUpgrader refuses an invalid option; with valid options it returns
// the core.Upgrader a Server would use, whose Upgrade hands back a
// connection configured by them (its handler, and the default heartbeat).
func TestServerUpgrader(t *testing.T) {
	if _, err := tether.ServerUpgrader(tether.WithMaxMessageSize(-1)); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("a bad option: %v", err)
	}
	got := make(chan string, 1)
	up, err := tether.ServerUpgrader(tether.WithHandler(func(_ context.Context, f core.Frame) error {
		got <- string(f.Payload)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(heartbeats(up.Config.Plugins)) != 1 {
		t.Fatalf("plugins %v, want the default heartbeat", up.Config.Plugins)
	}
	served := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			served <- err
			return
		}
		served <- c.Serve(r.Context())
	}))
	defer srv.Close()

	c, err := core.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{})
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
	h, err := tether.NewServer(tether.WithHandler(func(ctx context.Context, f core.Frame) error {
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

// Shutdown closes every connection with the code given, waits for them,
// and refuses later requests with 503.
func TestServerShutdown(t *testing.T) {
	ctx := testCtx(t)
	s, err := tether.NewServer(tether.WithHandler(func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	var served []chan error
	for range 3 {
		c, err := core.Dial(ctx, url, core.Config{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Serve(ctx) }()
		served = append(served, done)
		if err := c.WriteText(ctx, "hi"); err != nil { // served: the server has registered it
			t.Fatal(err)
		}
	}
	for len(s.Conns()) < 3 {
		runtime.Gosched()
	}
	if err := s.Shutdown(ctx, ws.StatusGoingAway, "restart"); err != nil {
		t.Fatal(err)
	}
	for _, done := range served {
		var ce *core.CloseError
		if err := <-done; !errors.As(err, &ce) || ce.Code != ws.StatusGoingAway || ce.Reason != "restart" || !ce.Remote {
			t.Fatalf("client saw %v, want the server's 1001 restart", err)
		}
	}
	if n := len(s.Conns()); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
	var he *core.HandshakeError
	if _, err := core.Dial(ctx, url, core.Config{}); !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v, want 503", err)
	}
	if err := s.Shutdown(ctx, ws.StatusGoingAway, ""); !errors.Is(err, tether.ErrServerClosed) {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := s.Shutdown(ctx, 1005, ""); err == nil {
		t.Fatal("Shutdown with code 1005 accepted")
	}
}

// A peer that never answers the close frame keeps Shutdown waiting until
// its ctx ends; the close timeout, on the server's clock, then ends the
// connection. A later Shutdown closes nothing more but waits for that end
// too, then says the server was shut down already.
func TestServerShutdownBoundedByCtx(t *testing.T) {
	ctx := testCtx(t)
	clock := clockwork.NewFakeClock()
	s, err := tether.NewServer(tether.WithClock(clock), tether.WithCloseTimeout(5*time.Second),
		tether.WithoutHeartbeat()) // the close timer is the only timer
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	nc, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	u, _ := core.ParseURL("ws" + strings.TrimPrefix(hs.URL, "http"))
	if _, _, err := (ws.Dialer{}).Upgrade(nc, u); err != nil { // then never reads again
		t.Fatal(err)
	}
	for len(s.Conns()) < 1 {
		runtime.Gosched()
	}
	short, cancel := context.WithCancel(ctx)
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(short, ws.StatusGoingAway, "") }()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the close timer: the server waits for the answer
		t.Fatal(err)
	}
	cancel()
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want the ctx's error", err)
	}
	again := make(chan error, 1)
	go func() { again <- s.Shutdown(ctx, ws.StatusGoingAway, "") }()
	select {
	case err := <-again:
		t.Fatalf("a second Shutdown returned %v before the connection ended", err)
	default:
	}
	clock.Advance(5 * time.Second)
	if err := <-again; !errors.Is(err, tether.ErrServerClosed) {
		t.Fatalf("second Shutdown = %v, want ErrServerClosed once the connection ended", err)
	}
	if n := len(s.Conns()); n != 0 {
		t.Fatalf("%d connections after the second Shutdown returned", n)
	}
}

// WithCheckOrigin lets a server accept the cross-origin browsers it trusts.
func TestWithCheckOrigin(t *testing.T) {
	ctx := testCtx(t)
	h, err := tether.NewServer(tether.WithCheckOrigin(func(origin, _ string) bool { return origin == "https://app.example" }))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	dial := func(origin string) error {
		d := core.Dialer{Header: http.Header{"Origin": {origin}}}
		c, err := d.Dial(ctx, url)
		if err == nil {
			_ = c.Close(ws.StatusNormalClosure, "") // not serving: releases the socket at once
		}
		return err
	}
	if err := dial("https://app.example"); err != nil {
		t.Fatalf("trusted origin: %v", err)
	}
	var he *core.HandshakeError
	if err := dial("https://evil.example"); !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Fatalf("other origin: %v, want 403", err)
	}
	if _, err := tether.NewServer(tether.WithCheckOrigin(nil)); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("WithCheckOrigin(nil): %v", err)
	}
}

// A panic in a handler closes that connection with 1011 (and is logged);
// it does not end the process, and the server goes on serving others, as
// net/http does for its handlers.
func TestServerHandlerPanicClosesTheConnectionOnly(t *testing.T) {
	h, err := tether.NewServer(tether.WithHandler(func(ctx context.Context, f core.Frame) error {
		if string(f.Payload) == "boom" {
			panic("handler bug")
		}
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	dialServe := func() (*core.Conn, chan error, chan string) {
		got := make(chan string, 1)
		c, err := core.Dial(testCtx(t), url, core.Config{Handler: func(_ context.Context, f core.Frame) error {
			got <- string(f.Payload)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Serve(context.Background()) }()
		return c, done, got
	}
	c1, done1, _ := dialServe()
	if err := c1.WriteText(testCtx(t), "boom"); err != nil {
		t.Fatal(err)
	}
	if err := <-done1; core.CloseStatus(err) != ws.StatusInternalServerError {
		t.Fatalf("the panicking connection ended with %v, want 1011", err)
	}
	c2, done2, got2 := dialServe()
	if err := c2.WriteText(testCtx(t), "still here"); err != nil {
		t.Fatal(err)
	}
	if m := <-got2; m != "still here" {
		t.Fatalf("echo %q", m)
	}
	_ = c2.Close(ws.StatusNormalClosure, "")
	<-done2
	if err := h.Shutdown(testCtx(t), ws.StatusGoingAway, ""); err != nil {
		t.Fatal(err)
	}
}
