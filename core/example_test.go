package core_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// The first middleware registered is the outermost: it sees a frame first
// on the way in and the result last on the way out. This order is fixed.
func ExampleChain() {
	trace := func(name string) core.Middleware {
		return func(next core.Handler) core.Handler {
			return func(ctx context.Context, f core.Frame) error {
				fmt.Println(name, "before")
				err := next(ctx, f)
				fmt.Println(name, "after")
				return err
			}
		}
	}
	chain := core.NewChain(trace("first"), trace("second"))
	chain = chain.Append(trace("third")) // a new chain; the old one is unchanged
	h := chain.Then(func(_ context.Context, f core.Frame) error {
		fmt.Println("handler", string(f.Payload))
		return nil
	})
	_ = h(context.Background(), core.Frame{Op: ws.OpText, Payload: []byte("hi")})
	// Output:
	// first before
	// second before
	// third before
	// handler hi
	// third after
	// second after
	// first after
}

// A server that upcases what it receives, and a client, over loopback.
func ExampleUpgrader() {
	up := &core.Upgrader{Config: core.Config{
		Handler: func(ctx context.Context, f core.Frame) error {
			return core.FromContext(ctx).WriteText(ctx, strings.ToUpper(string(f.Payload)))
		},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		_ = c.Serve(r.Context()) // the handler's goroutine is the connection's reader
	}))
	defer srv.Close()

	got := make(chan string, 1)
	c, err := core.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{
		Handler: func(_ context.Context, f core.Frame) error {
			got <- string(f.Payload)
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(context.Background()) }()

	_ = c.WriteText(context.Background(), "hello, tether")
	fmt.Println(<-got)
	_ = c.Close(ws.StatusNormalClosure, "done")
	fmt.Println(core.CloseStatus(<-done))
	// Output:
	// HELLO, TETHER
	// 1000
}

// Where plugins' middlewares sit: between the wire and the application's.
// Inbound, the first plugin is outermost and every plugin runs before the
// application's chain; outbound, the application's chain runs first, then
// the plugins, the first plugin nearest the wire. This order is fixed.
func ExamplePlugin_middlewareOrder() {
	trace := func(name string) core.Middleware {
		return func(next core.Handler) core.Handler {
			return func(ctx context.Context, f core.Frame) error {
				fmt.Println(name)
				return next(ctx, f)
			}
		}
	}
	plugin := func(name string) core.Plugin {
		return core.PluginFunc(func(h *core.Handle) error {
			if err := h.UseInbound(trace("in:  plugin " + name)); err != nil {
				return err
			}
			return h.UseOutbound(trace("out: plugin " + name))
		})
	}
	up := &core.Upgrader{Config: core.Config{
		Plugins:  []core.Plugin{plugin("A"), plugin("B")},
		Inbound:  core.NewChain(trace("in:  app 1"), trace("in:  app 2")),
		Outbound: core.NewChain(trace("out: app 1"), trace("out: app 2")),
		Handler: func(ctx context.Context, f core.Frame) error {
			fmt.Println("handler:", string(f.Payload))
			return core.FromContext(ctx).WriteText(ctx, "pong")
		},
	}}

	// A server and a client over an in-memory pipe.
	srvSide, cliSide := net.Pipe()
	accepted := make(chan *core.Conn, 1)
	go func() {
		c, err := up.Accept(srvSide)
		if err != nil {
			fmt.Println(err)
		}
		accepted <- c
	}()
	got := make(chan string, 1)
	d := &core.Dialer{
		NetDial: func(context.Context, string, string) (net.Conn, error) { return cliSide, nil },
		Config: core.Config{Handler: func(_ context.Context, f core.Frame) error {
			got <- string(f.Payload)
			return nil
		}},
	}
	cli, err := d.Dial(context.Background(), "ws://example.com/")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := <-accepted
	if srv == nil {
		return
	}
	srvDone, cliDone := make(chan error, 1), make(chan error, 1)
	go func() { srvDone <- srv.Serve(context.Background()) }()
	go func() { cliDone <- cli.Serve(context.Background()) }()

	_ = cli.WriteText(context.Background(), "ping")
	fmt.Println("client got:", <-got)
	_ = cli.Close(ws.StatusNormalClosure, "")
	<-cliDone
	<-srvDone
	// Output:
	// in:  plugin A
	// in:  plugin B
	// in:  app 1
	// in:  app 2
	// handler: ping
	// out: app 1
	// out: app 2
	// out: plugin B
	// out: plugin A
	// client got: pong
}
