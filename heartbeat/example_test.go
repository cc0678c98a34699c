package heartbeat_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// A client pings its server every 30 s of simulated time. The server
// answers pings by itself; the client reports each round trip.
func Example() {
	clock := clockwork.NewFakeClock()
	bus := events.NewBus()
	defer bus.Close()
	pongs := make(chan heartbeat.PongReceived, 1)
	unsubscribe, _ := events.Subscribe(bus, func(e heartbeat.PongReceived) { pongs <- e })
	defer unsubscribe()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&core.Upgrader{}).Upgrade(w, r)
		if err == nil {
			_ = c.Serve(r.Context())
		}
	}))
	defer srv.Close()

	hb, err := heartbeat.New(heartbeat.Config{Interval: 30 * time.Second, Timeout: 10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	c, err := core.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{
		Clock: clock, Bus: bus, Plugins: []core.Plugin{hb},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = c.Serve(ctx) }()

	start := clock.Now()
	// advance moves simulated time once the heartbeat's timer is armed:
	// advancing earlier is the classic fake-clock race.
	advance := func(d time.Duration) {
		_ = clock.BlockUntilContext(ctx, 1)
		clock.Advance(d)
	}
	advance(30 * time.Second) // the first ping
	for i := range 3 {
		e := <-pongs
		fmt.Printf("pong #%d at %v, rtt %v\n", e.Seq, e.At.Sub(start), e.RTT)
		if i < 2 {
			advance(10 * time.Second) // the pong came in time: nothing missed
			advance(20 * time.Second) // the next ping
		}
	}
	st, _ := heartbeat.StatsOf(c)
	fmt.Printf("sent %d, answered %d\n", st.Sent, st.Answered)
	_ = c.Close(1000, "done") // starts the close handshake and returns
	<-c.Done()                // the server answered: the connection ended
	fmt.Println("ended by the heartbeat:", errors.Is(c.Err(), heartbeat.ErrTimeout))
	// Output:
	// pong #1 at 30s, rtt 0s
	// pong #2 at 1m0s, rtt 0s
	// pong #3 at 1m30s, rtt 0s
	// sent 3, answered 3
	// ended by the heartbeat: false
}

// A server that runs only the Responder plugin answers the browser
// recipe's text "ping" with "pong"; the application's handler sees every
// other message.
func ExampleResponder() {
	responder, err := heartbeat.Responder(heartbeat.Config{}) // "ping" and "pong"
	if err != nil {
		fmt.Println(err)
		return
	}
	fromClient := make(chan string, 1)
	up := &core.Upgrader{Config: core.Config{
		Plugins: []core.Plugin{responder},
		Handler: func(_ context.Context, f core.Frame) error { fromClient <- string(f.Payload); return nil },
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err == nil {
			_ = c.Serve(r.Context())
		}
	}))
	defer srv.Close()

	// The client plays the browser recipe: it sends "ping" as a text
	// message and reads "pong" back.
	fromServer := make(chan string, 1)
	ctx := context.Background()
	c, err := core.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{
		Handler: func(_ context.Context, f core.Frame) error { fromServer <- string(f.Payload); return nil },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = c.Serve(ctx) }()

	_ = c.WriteText(ctx, "ping")
	fmt.Println("client got:", <-fromServer)
	_ = c.WriteText(ctx, "hello")
	fmt.Println("server handler got:", <-fromClient)
	_ = c.Close(1000, "done")
	<-c.Done()
	// Output:
	// client got: pong
	// server handler got: hello
}
