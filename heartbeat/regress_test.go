package heartbeat_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
)

// Found in review. With AnyFrame and Timeout == Interval, a busy
// connection was pinged every interval once one ping had gone out.
func TestAnyFrameWithTimeoutEqualToInterval(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{AnyFrame: true, Interval: 30 * time.Second, Timeout: 30 * time.Second})
	got := make(chan string, 16)
	handler := func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil }
	_, p, _ := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Handler: handler, Plugins: []core.Plugin{hb}})
	s.settle(1)
	s.step(30*time.Second, 1) // a silent first interval: ping #1
	s.expect("c sent #1 @30s")
	p.expectPing(t)
	for range 3 { // then busy: a message every 10 s, never a ping
		for range 2 {
			s.step(10*time.Second, 1)
			p.send(t, ws.OpText, "busy")
			<-got
		}
		s.step(10*time.Second, 1)
		s.quiet()
	}
}

// Found in review. A late pong was taken for the answer to the next ping,
// with that ping's number and a wrong RTT; the real answer was then
// dropped. Pings now carry their number.
func TestLatePongIsNotTheNextPingsAnswer(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{MaxMissed: 1})
	_, p, _ := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}})
	s.settle(1)
	s.step(30*time.Second, 1)
	s.expect("c sent #1 @30s")
	p.expectPing(t)
	first := p.lastPing
	s.step(10*time.Second, 1)
	s.expect("c missed #1 (1) @40s")
	s.step(20*time.Second, 1)
	s.expect("c sent #2 @1m0s")
	p.expectPing(t)
	s.step(100*time.Millisecond, 1)
	p.send(t, ws.OpPong, first) // ping #1's pong, 30 s late: ignored
	s.step(100*time.Millisecond, 1)
	p.send(t, ws.OpPong, p.lastPing)
	s.expect("c pong #2 rtt=200ms @1m0.2s")
	// A peer that answers with an empty pong is still understood.
	s.step(10*time.Second-200*time.Millisecond, 1)
	s.step(20*time.Second, 1)
	s.expect("c sent #3 @1m30s")
	p.expectPing(t)
	p.send(t, ws.OpPong, "")
	s.expect("c pong #3 rtt=0s @1m30s")
}

// Found in review. A Heartbeat not made by New (the zero value) aborted
// every connection at once; it is now refused with an error: its Attach
// fails, which fails the Dial, and the peer is told why with 1011. A nil
// one's Config does not panic.
func TestZeroHeartbeatIsRefused(t *testing.T) {
	var hb heartbeat.Heartbeat
	u, peers := rawServer(t)
	c, err := core.Dial(testCtx(t), u, core.Config{ID: "c", Plugins: []core.Plugin{&hb}})
	if c != nil || !errors.Is(err, core.ErrInvalidConfig) || errors.Is(err, heartbeat.ErrTimeout) {
		t.Fatalf("Dial = %v, %v; want ErrInvalidConfig", c, err)
	}
	p := <-peers
	if p == nil {
		t.Fatal("raw server failed")
	}
	p.expectFrame(t, ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusInternalServerError, "internal error")))
	if _, _, err := p.tryRead(); err == nil {
		t.Fatal("the socket of a refused connection stayed open")
	}
	var h *heartbeat.Heartbeat
	if h.Config().Interval != 0 {
		t.Fatal("nil Config")
	}
}

// With AnyFrame and MaxMissed, a peer that speaks between two misses
// starts the count again: a skipped ping resets it.
func TestAnyFrameTrafficResetsTheMissCount(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{AnyFrame: true, MaxMissed: 1})
	got := make(chan string, 16)
	handler := func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil }
	c, p, _ := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Handler: handler, Plugins: []core.Plugin{hb}})
	s.settle(1)
	s.step(30*time.Second, 1)
	s.expect("c sent #1 @30s")
	p.expectPing(t)
	s.step(10*time.Second, 1)
	s.expect("c missed #1 (1) @40s") // tolerated
	s.step(5*time.Second, 1)
	p.send(t, ws.OpText, "alive") // at 45 s
	<-got
	s.step(15*time.Second, 1) // 60 s: the peer spoke, no ping, count reset
	s.quiet()
	s.step(30*time.Second, 1) // 90 s: silent since 45 s
	s.expect("c sent #2 @1m30s")
	p.expectPing(t)
	s.step(10*time.Second, 1)
	s.expect("c missed #2 (1) @1m40s") // 1 again, not 2: still tolerated
	if c.Err() != nil {
		t.Fatalf("closed: %v", c.Err())
	}
}

// A protocol ping with a payload of the user's: sent as is, and a pong
// echoing it answers.
func TestProtocolPingWithCustomPayload(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{PingPayload: []byte("hb")})
	_, p, _ := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}})
	s.settle(1)
	s.step(30*time.Second, 1)
	s.expect("c sent #1 @30s")
	p.expectPing(t)
	if p.lastPing != "hb" {
		t.Fatalf("ping payload %q", p.lastPing)
	}
	p.send(t, ws.OpPong, "hb")
	s.expect("c pong #1 rtt=0s @30s")
}

// Responder uses the config's Classify: a JSON ping gets the configured
// pong.
func TestResponderWithClassify(t *testing.T) {
	r, err := heartbeat.Responder(heartbeat.Config{
		PingPayload: []byte(`{"type":"ping"}`),
		PongPayload: []byte(`{"type":"pong"}`),
		Classify: func(op ws.OpCode, p []byte) heartbeat.Kind {
			if op == ws.OpText && strings.Contains(string(p), `"ping"`) {
				return heartbeat.Ping
			}
			return heartbeat.NotHeartbeat
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	handler := func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil }
	p, _, _ := rawClient(t, &core.Upgrader{Config: core.Config{Handler: handler, Plugins: []core.Plugin{r}}})
	p.send(t, ws.OpText, `{"type":"ping","id":3}`)
	p.expectFrame(t, ws.OpText, `{"type":"pong"}`)
	p.send(t, ws.OpText, `{"type":"quote"}`)
	if m := <-got; m != `{"type":"quote"}` {
		t.Fatalf("handler got %q", m)
	}
}
