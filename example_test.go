package tether_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/middleware"
)

// A minimal server and client, with nothing but package tether: the
// heartbeat is on and the client reconnects, by default.
func Example() {
	srv, err := tether.NewServer(tether.WithHandler(func(ctx context.Context, m tether.Frame) error {
		return tether.FromContext(ctx).Write(ctx, m.Op, m.Payload) // echo
	}))
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ctx := context.Background()
	got := make(chan string, 1)
	c, err := tether.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"),
		tether.WithHandler(func(_ context.Context, m tether.Frame) error {
			got <- string(m.Payload) // valid until the handler returns: a string copies it
			return nil
		}))
	if err != nil {
		panic(err)
	}
	_ = c.SendText(ctx, "hello")
	fmt.Println("echo:", <-got)
	fmt.Println("client:", c.Shutdown(ctx, tether.StatusNormalClosure, "bye"))
	fmt.Println("server:", srv.Shutdown(ctx, tether.StatusGoingAway, "restart"))
	// Output:
	// echo: hello
	// client: <nil>
	// server: <nil>
}

// A server built from options: one bus sees every connection's lifecycle.
func ExampleNewServer() {
	bus := events.NewBus()
	defer bus.Close()
	closed := make(chan events.Disconnected, 1)
	_, _ = events.Subscribe(bus, func(e events.Disconnected) {
		if e.Remote { // the server's side of a close the client started
			closed <- e
		}
	})

	srv, err := tether.NewServer(
		tether.WithBus(bus),
		tether.WithMiddleware(middleware.Recover()),
		tether.WithHandler(func(ctx context.Context, m tether.Frame) error {
			return tether.FromContext(ctx).Write(ctx, m.Op, m.Payload)
		}),
	)
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ctx := context.Background()
	got := make(chan string, 1)
	c, err := tether.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), tether.WithHandler(func(_ context.Context, m tether.Frame) error {
		got <- string(m.Payload)
		return nil
	}))
	if err != nil {
		panic(err)
	}
	_ = c.SendText(ctx, "ping")
	fmt.Println("client got:", <-got)
	_ = c.Shutdown(ctx, tether.StatusNormalClosure, "bye")
	e := <-closed // delivered once the server side has closed too
	fmt.Printf("server: closed by peer=%v with %d %q\n", e.Remote, e.Code, e.Reason)
	_ = srv.Shutdown(ctx, tether.StatusGoingAway, "")
	// Output:
	// client got: ping
	// server: closed by peer=true with 1000 "bye"
}
