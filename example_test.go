package tether_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/middleware"
)

// A server built from options: one bus sees every connection's lifecycle.
func ExampleHandler() {
	bus := events.NewBus()
	defer bus.Close()
	closed := make(chan events.Disconnected, 1)
	_, _ = events.Subscribe(bus, func(e events.Disconnected) { closed <- e })

	echo := func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}
	h, err := tether.Handler(
		tether.WithBus(bus),
		tether.WithMiddleware(middleware.Recover()),
		tether.WithHandler(echo),
	)
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	got := make(chan string, 1)
	c, err := core.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{
		Handler: func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil },
	})
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(context.Background()) }()
	_ = c.WriteText(context.Background(), "ping")
	fmt.Println("client got:", <-got)
	_ = c.Close(ws.StatusNormalClosure, "bye")
	<-done
	e := <-closed // delivered once the server side has closed too
	fmt.Printf("server: closed by peer=%v with %d %q\n", e.Remote, e.Code, e.Reason)
	// Output:
	// client got: ping
	// server: closed by peer=true with 1000 "bye"
}
