package heartbeat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// Text mode against a peer that speaks only the recipe's "ping"/"pong": our
// pings are text, its pong answers them, its pings get our pong, and no
// heartbeat message ever reaches the handler or the outbound chain, or
// publishes a MessageOut.
func TestTextModeAgainstARecipePeer(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{Mode: heartbeat.Text})
	got := make(chan string, 16)
	handler := func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil }
	outbound := core.NewChain(func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			got <- "outbound saw " + string(f.Payload)
			return next(ctx, f)
		}
	})
	subscribe(t, s.bus, func(e events.MessageOut) { got <- "MessageOut " + string(e.Payload) })
	c, p, done := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Handler: handler, Outbound: outbound, Plugins: []core.Plugin{hb}})
	s.settle(1)

	p.send(t, ws.OpText, "ping") // the peer's own heartbeat
	p.expectFrame(t, ws.OpText, "pong")
	p.send(t, ws.OpText, "pong") // unsolicited: consumed, no event
	p.send(t, ws.OpText, "hello")
	if m := <-got; m != "hello" {
		t.Fatalf("handler got %q first", m)
	}

	s.step(30*time.Second, 1)
	s.expect("c sent #1 @30s")
	p.expectFrame(t, ws.OpText, "ping")
	p.send(t, ws.OpText, "pong")
	s.expect("c pong #1 rtt=0s @30s")
	s.step(10*time.Second, 1)
	s.step(20*time.Second, 1)
	s.expect("c sent #2 @1m0s")
	p.expectFrame(t, ws.OpText, "ping")
	// "pong" as binary is not the heartbeat: it reaches the handler.
	p.send(t, ws.OpBinary, "pong")
	if m := <-got; m != "pong" {
		t.Fatalf("handler got %q", m)
	}
	s.clock.Advance(10 * time.Second)
	s.expect("c missed #2 (1) @1m10s")
	s.expect("c timeout (1) @1m10s")
	s.expect("c disconnected 1006 @1m10s")
	if err := waitErr(t, done); !errors.Is(err, heartbeat.ErrTimeout) {
		t.Fatalf("Serve returned %v", err)
	}
	select {
	case m := <-got:
		t.Fatalf("unexpected %q", m)
	default:
	}
	_ = c
}

// A JSON heartbeat: custom payloads and a Classify function that decodes
// the message type.
func TestTextModeWithJSONClassify(t *testing.T) {
	s := newSim(t)
	classify := func(op ws.OpCode, p []byte) heartbeat.Kind {
		if op != ws.OpText || !bytes.HasPrefix(p, []byte(`{"type":"p`)) {
			return heartbeat.NotHeartbeat // cheap reject first: this runs for every message
		}
		var m struct{ Type string }
		if json.Unmarshal(p, &m) != nil {
			return heartbeat.NotHeartbeat
		}
		switch m.Type {
		case "ping":
			return heartbeat.Ping
		case "pong":
			return heartbeat.Pong
		}
		return heartbeat.NotHeartbeat
	}
	hb := mustHB(t, heartbeat.Config{
		Mode:        heartbeat.Text,
		PingPayload: []byte(`{"type":"ping"}`),
		PongPayload: []byte(`{"type":"pong"}`),
		Classify:    classify,
	})
	got := make(chan string, 16)
	handler := func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil }
	_, p, _ := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Handler: handler, Plugins: []core.Plugin{hb}})
	s.settle(1)
	s.step(30*time.Second, 1)
	s.expect("c sent #1 @30s")
	p.expectFrame(t, ws.OpText, `{"type":"ping"}`)
	p.send(t, ws.OpText, `{"type":"pong","server_time":12345}`)
	s.expect("c pong #1 rtt=0s @30s")
	p.send(t, ws.OpText, `{"type":"ping","id":7}`)
	p.expectFrame(t, ws.OpText, `{"type":"pong"}`)
	p.send(t, ws.OpText, `{"type":"price","v":1}`)
	if m := <-got; m != `{"type":"price","v":1}` {
		t.Fatalf("handler got %q", m)
	}
	s.step(10*time.Second, 1)
	s.quiet()
}

// The Responder plugin lets a plain server answer the browser recipe: text
// pings get pongs and stop there; everything else goes on to the handler.
// The pong is not the application's traffic: it passes no outbound
// middleware and publishes no MessageOut, while the application's own
// writes do both.
func TestResponderAnswersTextPings(t *testing.T) {
	r, err := heartbeat.Responder(heartbeat.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bus := events.NewBus()
	t.Cleanup(func() { bus.Close(); _ = bus.Wait(testCtx(t)) })
	out := make(chan string, 16)
	subscribe(t, bus, func(e events.MessageOut) { out <- "MessageOut " + string(e.Payload) })
	outbound := core.NewChain(func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			out <- "outbound " + string(f.Payload)
			return next(ctx, f)
		}
	})
	got := make(chan string, 16)
	handler := func(ctx context.Context, f core.Frame) error {
		got <- string(f.Payload)
		if string(f.Payload) == "echo" {
			return core.FromContext(ctx).WriteText(ctx, "echoed")
		}
		return nil
	}
	p, _, _ := rawClient(t, &core.Upgrader{Config: core.Config{
		Bus: bus, Handler: handler, Outbound: outbound, Plugins: []core.Plugin{r},
	}})
	p.send(t, ws.OpText, "ping")
	p.expectFrame(t, ws.OpText, "pong")
	p.send(t, ws.OpText, "pong")
	p.send(t, ws.OpText, "pingpong")
	if m := <-got; m != "pong" {
		t.Fatalf("handler got %q", m)
	}
	if m := <-got; m != "pingpong" {
		t.Fatalf("handler got %q", m)
	}
	p.send(t, ws.OpText, "ping")
	p.expectFrame(t, ws.OpText, "pong")
	p.send(t, ws.OpText, "echo") // the application writes: outbound chain and MessageOut
	p.expectFrame(t, ws.OpText, "echoed")
	if err := bus.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(out) > 0 {
		seen = append(seen, <-out)
	}
	if want := []string{"outbound echoed", "MessageOut echoed"}; !slices.Equal(seen, want) {
		t.Fatalf("outbound chain and MessageOut saw %q, want only the application's write %q", seen, want)
	}

	if _, err := heartbeat.Responder(heartbeat.Config{PingPayload: []byte("x"), PongPayload: []byte("x")}); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("same ping and pong: %v", err)
	}
}

// Both ends run the text heartbeat: each answers the other's pings, and
// neither handler sees a heartbeat.
func TestTextModeBothEnds(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{Mode: heartbeat.Text, Interval: 20 * time.Second, Timeout: 5 * time.Second})
	got := make(chan string, 16)
	handler := func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil }
	srv := newServer(t, &core.Upgrader{Config: core.Config{ID: "s", Clock: s.clock, Bus: s.bus, Handler: handler, Plugins: []core.Plugin{hb}}})
	c, err := core.Dial(testCtx(t), srv.url, withHandle(core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Handler: handler, Plugins: []core.Plugin{hb}}))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, c)
	s.settle(2)
	s.step(20*time.Second, 2)
	// Both pinged at 20 s; each answered the other.
	seen := map[string]bool{}
	for range 4 {
		select {
		case e := <-s.ch:
			seen[e] = true
		case <-time.After(testTimeout): // wall time: hang guard only
			t.Fatalf("events so far: %v", seen)
		}
	}
	for _, want := range []string{"c sent #1 @20s", "s sent #1 @20s", "c pong #1 rtt=0s @20s", "s pong #1 rtt=0s @20s"} {
		if !seen[want] {
			t.Fatalf("missing %q in %v", want, seen)
		}
	}
	s.step(5*time.Second, 2)
	s.quiet()
	if err := c.WriteText(testCtx(t), "app"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "app" {
		t.Fatalf("handler got %q", m)
	}
	select {
	case m := <-got:
		t.Fatalf("a heartbeat reached a handler: %q", m)
	default:
	}
}
