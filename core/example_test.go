package core_test

import (
	"context"
	"fmt"
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
