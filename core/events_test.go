package core_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// A connection publishes its lifecycle in order: Connected, each message
// in and out, Disconnected; timestamps come from the injected clock. A
// subscriber that publishes from its handler does not deadlock anything.
func TestConnectionEventsInOrder(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	bus := events.NewBus()
	defer bus.Close()

	var mu sync.Mutex
	var log []string
	add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	sub := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var u func()
	var err error
	u, err = events.Subscribe(bus, func(e events.Connected) {
		if !e.At.Equal(start) {
			t.Errorf("Connected.At = %v, want the fake clock's %v", e.At, start)
		}
		add(fmt.Sprintf("connected client=%v", e.Client))
		// Publishing from a handler: queued behind the current event.
		events.Publish(bus, events.Error{ConnID: e.ConnID, Err: fmt.Errorf("note from a subscriber")})
	})
	sub(err)
	defer u()
	u, err = events.Subscribe(bus, func(e events.MessageIn) { add("in " + string(e.Payload)) })
	sub(err)
	defer u()
	u, err = events.Subscribe(bus, func(e events.MessageOut) { add("out " + string(e.Payload)) })
	sub(err)
	defer u()
	u, err = events.Subscribe(bus, func(e events.Error) { add("error " + e.Err.Error()) })
	sub(err)
	defer u()
	u, err = events.Subscribe(bus, func(e events.Disconnected) {
		add(fmt.Sprintf("disconnected %d %s remote=%v", e.Code, e.Reason, e.Remote))
	})
	sub(err)
	defer u()

	echo := func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, append([]byte("re:"), f.Payload...))
	}
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock, Bus: bus, Handler: echo}})
	for _, m := range []string{"a", "b", "c"} {
		p.send(t, masked(ws.NewTextFrame([]byte(m))))
		if f := p.readFrame(t); string(f.Payload) != "re:"+m {
			t.Fatalf("echo %q", f.Payload)
		}
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "later"))))
	waitErr(t, p.serve)
	busWait(t, bus)

	mu.Lock()
	defer mu.Unlock()
	// The event a subscriber published is queued behind whatever the
	// connection had already published: it comes after Connected, anywhere.
	var conn []string
	noteAt, connectedAt := -1, -1
	for i, s := range log {
		switch s {
		case "error note from a subscriber":
			noteAt = i
			continue
		case "connected client=false":
			connectedAt = i
		}
		conn = append(conn, s)
	}
	if noteAt < 0 || noteAt < connectedAt {
		t.Fatalf("the subscriber's own event was lost or delivered before its cause: %v", log)
	}
	want := []string{
		"connected client=false",
		"in a", "out re:a", "in b", "out re:b", "in c", "out re:c",
		"disconnected 1001 later remote=true",
	}
	if strings.Join(conn, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(conn, "\n"), strings.Join(want, "\n"))
	}
}
