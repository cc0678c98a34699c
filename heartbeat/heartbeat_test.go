package heartbeat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
)

// The recipe's schedule: a ping at 30 s, 60 s and 90 s; each pong resets the
// watch, so nothing is missed; the RTT is measured on the injected clock.
func TestPingsEveryIntervalAndPongResetsTheWatch(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{})
	c, p, _ := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}})
	s.settle(1)
	if st, ok := heartbeat.StatsOf(c); !ok || st != (heartbeat.Stats{}) {
		t.Fatalf("StatsOf before the first ping = %+v, %v", st, ok)
	}
	s.step(30*time.Second, 1)
	for i, at := range []string{"30s", "1m0s", "1m30s"} {
		s.expect("c sent #" + itoa(i+1) + " @" + at)
		p.expectPing(t)
		s.step(250*time.Millisecond, 1) // the pong takes a quarter second
		p.send(t, ws.OpPong, p.lastPing)
		s.expect("c pong #" + itoa(i+1) + " rtt=250ms @" + at[:len(at)-1] + ".25s")
		if st, _ := heartbeat.StatsOf(c); st.RTT != 250*time.Millisecond || st.Answered != uint64(i+1) {
			t.Fatalf("StatsOf = %+v", st)
		}
		s.step(10*time.Second-250*time.Millisecond, 1) // the timeout passes: answered, nothing missed
		s.step(20*time.Second, 1)                      // the next ping
	}
	s.expect("c sent #4 @2m0s")
	s.quiet()
	if st, ok := heartbeat.StatsOf(c); !ok || st != (heartbeat.Stats{Sent: 4, Answered: 3, RTT: 250 * time.Millisecond}) {
		t.Fatalf("StatsOf = %+v, %v", st, ok)
	}
	if c.Err() != nil {
		t.Fatalf("connection ended: %v", c.Err())
	}
}

// No pong by 30 s + 10 s: the connection is aborted with ErrTimeout, not a
// nanosecond earlier, and the events say so in order.
func TestNoPongClosesWithErrTimeout(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{})
	c, p, done := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}})
	s.settle(1)
	s.step(30*time.Second, 1)
	s.expect("c sent #1 @30s")
	p.expectPing(t)
	s.step(10*time.Second-time.Nanosecond, 1)
	s.quiet()
	if c.Err() != nil {
		t.Fatalf("closed before the timeout: %v", c.Err())
	}
	s.clock.Advance(time.Nanosecond)
	s.expect("c missed #1 (1) @40s")
	s.expect("c timeout (1) @40s")
	s.expect("c disconnected 1006 @40s")
	err := waitErr(t, done)
	if !errors.Is(err, heartbeat.ErrTimeout) || core.CloseStatus(err) != 1006 {
		t.Fatalf("Serve returned %v, want ErrTimeout with 1006", err)
	}
	p.expectGone(t)
	s.quiet()
}

// With AnyFrame, a peer that keeps talking is never pinged; a data frame
// also answers an outstanding ping; silence then ends in a timeout.
func TestAnyFrameCountsAsProofOfLife(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{AnyFrame: true})
	got := make(chan string, 16)
	handler := func(_ context.Context, f core.Frame) error { got <- string(f.Payload); return nil }
	c, p, done := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Handler: handler, Plugins: []core.Plugin{hb}})
	s.settle(1)
	say := func(msg string) {
		t.Helper()
		p.send(t, ws.OpText, msg)
		if m := <-got; m != msg {
			t.Fatalf("handler got %q", m)
		}
	}
	for i := 1; i <= 9; i++ { // a message every 10 s, up to 90 s
		s.step(10*time.Second, 1)
		say("busy")
	}
	s.step(30*time.Second, 1) // 120 s: the message at 90 s still counts
	s.quiet()                 // no ping at 30, 60, 90 or 120 s
	s.step(30*time.Second, 1) // 150 s: silent for a whole interval
	s.expect("c sent #1 @2m30s")
	p.expectPing(t)
	s.step(5*time.Second, 1)
	say("not a pong, but alive") // answers the ping
	s.step(5*time.Second, 1)     // 160 s: nothing missed
	s.quiet()
	s.step(20*time.Second, 1) // 180 s: the message at 155 s is older than the last check
	s.expect("c sent #2 @3m0s")
	p.expectPing(t)
	s.clock.Advance(10 * time.Second)
	s.expect("c missed #2 (1) @3m10s")
	s.expect("c timeout (1) @3m10s")
	s.expect("c disconnected 1006 @3m10s")
	if err := waitErr(t, done); !errors.Is(err, heartbeat.ErrTimeout) {
		t.Fatalf("Serve returned %v", err)
	}
	_ = c
}

// MaxMissed tolerates that many consecutive misses; a pong in between
// starts the count again.
func TestMaxMissedToleratesConsecutiveMisses(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{MaxMissed: 1})
	c, p, done := dialRaw(t, core.Config{ID: "c", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}})
	s.settle(1)
	ping := func(want string) {
		t.Helper()
		s.expect(want)
		p.expectPing(t)
	}
	s.step(30*time.Second, 1)
	ping("c sent #1 @30s")
	s.step(10*time.Second, 1)
	s.expect("c missed #1 (1) @40s") // tolerated
	s.step(20*time.Second, 1)
	ping("c sent #2 @1m0s")
	p.send(t, ws.OpPong, p.lastPing)
	s.expect("c pong #2 rtt=0s @1m0s")
	s.step(10*time.Second, 1)
	s.step(20*time.Second, 1)
	ping("c sent #3 @1m30s")
	s.step(10*time.Second, 1)
	s.expect("c missed #3 (1) @1m40s") // the pong reset the count
	s.step(20*time.Second, 1)
	ping("c sent #4 @2m0s")
	if st, _ := heartbeat.StatsOf(c); st.Sent != 4 || st.Answered != 1 || st.Missed != 1 {
		t.Fatalf("StatsOf = %+v", st)
	}
	s.clock.Advance(10 * time.Second)
	s.expect("c missed #4 (2) @2m10s")
	s.expect("c timeout (2) @2m10s")
	s.expect("c disconnected 1006 @2m10s")
	if err := waitErr(t, done); !errors.Is(err, heartbeat.ErrTimeout) {
		t.Fatalf("Serve returned %v", err)
	}
}

// A connection that closed keeps no live timer: its deadline passing later
// publishes nothing and touches no other connection, and it never pings
// again. The next connection on the same clock runs its own schedule.
func TestStaleTimerNeverFiresOnANewConnection(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{})
	a, pa, doneA := dialRaw(t, core.Config{ID: "a", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}})
	s.settle(1)
	s.step(30*time.Second, 1)
	s.expect("a sent #1 @30s")
	pa.expectPing(t)
	// The peer closes a while its ping is outstanding.
	pa.send(t, ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	pa.expectFrame(t, ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	if err := waitErr(t, doneA); core.CloseStatus(err) != ws.StatusNormalClosure {
		t.Fatalf("a ended with %v", err)
	}
	s.expect("a disconnected 1000 @30s")

	b, pb, _ := dialRaw(t, core.Config{ID: "b", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}})
	_ = b
	s.settle(1)
	s.step(10*time.Second, 1) // a's deadline: nothing happens
	s.quiet()
	if b.Err() != nil {
		t.Fatalf("b closed: %v", b.Err())
	}
	s.step(20*time.Second, 1) // b's first ping, 30 s after it connected
	s.expect("b sent #1 @1m0s")
	pb.expectPing(t)
	s.quiet()
	if _, _, err := pa.tryRead(); err == nil {
		t.Fatal("a sent a frame after it closed")
	}
	_ = a
}

// Server side: the same plugin drops a client that stopped answering.
func TestServerDropsAClientThatStoppedAnswering(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{})
	p, srv, done := rawClient(t, &core.Upgrader{Config: core.Config{ID: "s", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}}})
	s.settle(1)
	s.step(30*time.Second, 1)
	s.expect("s sent #1 @30s")
	p.expectPing(t)
	p.send(t, ws.OpPong, p.lastPing)
	s.expect("s pong #1 rtt=0s @30s")
	s.step(10*time.Second, 1)
	s.step(20*time.Second, 1)
	s.expect("s sent #2 @1m0s")
	p.expectPing(t) // read, but never answered: the client vanished
	s.clock.Advance(10 * time.Second)
	s.expect("s missed #2 (1) @1m10s")
	s.expect("s timeout (1) @1m10s")
	s.expect("s disconnected 1006 @1m10s")
	if err := waitErr(t, done); !errors.Is(err, heartbeat.ErrTimeout) {
		t.Fatalf("server Serve returned %v", err)
	}
	_ = srv
}

// A peer that stops reading over real loopback TCP is detected even while
// a writer is stuck on its full socket (it holds the connection's write
// lock, so the ping cannot even be written): the timeout aborts the
// connection, which releases the writer. The fake clock drives time.
func TestPeerThatStopsReadingIsDetected(t *testing.T) {
	s := newSim(t)
	hb := mustHB(t, heartbeat.Config{})
	p, srv, done := stuckClient(t, &core.Upgrader{Config: core.Config{ID: "s", Clock: s.clock, Bus: s.bus, Plugins: []core.Plugin{hb}}})
	s.settle(1)
	writer := make(chan error, 1)
	go func() {
		big := make([]byte, 4<<20)
		for {
			if err := srv.Write(context.Background(), ws.OpBinary, big); err != nil {
				writer <- err
				return
			}
		}
	}()
	s.step(30*time.Second, 1) // the ping waits behind the stuck writer
	s.expect("s sent #1 @30s")
	select {
	case err := <-writer:
		t.Fatalf("the writer was not stuck: %v", err)
	default:
	}
	s.clock.Advance(10 * time.Second)
	s.expect("s missed #1 (1) @40s")
	s.expect("s timeout (1) @40s")
	s.expect("s disconnected 1006 @40s")
	if err := waitErr(t, done); !errors.Is(err, heartbeat.ErrTimeout) {
		t.Fatalf("Serve returned %v", err)
	}
	if err := waitErr(t, writer); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("stuck writer got %v, want ErrClosed", err)
	}
	_ = p
}

func itoa(i int) string { return string(rune('0' + i)) }
