package reliability_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// A black hole mid-stream, 50 times in long mode: toxiproxy's timeout
// toxic (timeout 0) swallows every byte both ways and keeps the sockets
// open, so TCP reports nothing. The heartbeat (the recipe's 30 s interval,
// 10 s timeout) runs on a fake clock; the onset falls at a random second of
// the ping cycle, after 0 to 2 pings answered through the proxy. Each trial
// checks that the dead connection is declared dead by the heartbeat, never
// by TCP first, within Interval + Timeout of the onset, and that a
// reconnect follows once the network heals. It prints the detection times.
func TestBlackHoleDetection(t *testing.T) {
	trials := scale(5, 50)
	ignore := goleak.IgnoreCurrent()
	clock := clockwork.NewFakeClockAt(t0)
	log := newEvlog(t)
	srv := newServer(t, newLedger(acks, 0))
	px := newProxy(t, srv.addr)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	defer cancel()
	c, err := tether.Dial(ctx, px.url(), tether.WithClock(clock), tether.WithBus(log.bus), tether.WithHeartbeat(hb))
	if err != nil {
		t.Fatal(err)
	}
	await[events.Connected](log)
	const seed = 8
	rnd := rand.New(rand.NewPCG(seed, seed))
	var detect, recover []time.Duration
	wall := time.Now() // wall time: reported, never asserted

	for trial := range trials {
		// 0 to 2 pings answered through the proxy: the link works.
		k := rnd.IntN(3)
		for j := range k {
			if j > 0 {
				step(t, clock, 1, hb.Timeout) // the previous ping's check: answered
				step(t, clock, 1, hb.Interval-hb.Timeout)
			} else {
				step(t, clock, 1, hb.Interval)
			}
			await[heartbeat.PongReceived](log)
		}
		// The onset, o whole seconds after the last ping (or the
		// connection's start), anywhere in the cycle.
		o := time.Duration(rnd.IntN(int(hb.Interval/time.Second))) * time.Second
		if k > 0 && o >= hb.Timeout {
			step(t, clock, 1, hb.Timeout)
			step(t, clock, 1, o-hb.Timeout)
		} else {
			step(t, clock, 1, o)
		}
		onset := clock.Now()
		px.both("bh", "timeout", map[string]any{"timeout": 0})

		// Time moves a second at a time until the heartbeat declares the
		// connection dead; after each second, once a timer is armed again
		// (the heartbeat's, or the close timer of the aborted connection),
		// everything published so far is looked at. HeartbeatTimeout is
		// published before the abort arms anything.
		var seen []any
		has := func(match func(any) bool) bool { return slices.ContainsFunc(seen, match) }
		isTimeout := func(e any) bool { _, ok := e.(heartbeat.Timeout); return ok }
		for !has(isTimeout) {
			if clock.Since(onset) >= hb.Interval+hb.Timeout {
				t.Fatalf("trial %d: nothing detected %v after the onset", trial, clock.Since(onset))
			}
			step(t, clock, 1, time.Second)
			armed(t, clock, 1)
			wctx, wcancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
			err := log.bus.Wait(wctx)
			wcancel()
			if err != nil {
				t.Fatalf("trial %d: the bus did not deliver: %v", trial, err)
			}
			seen = append(seen, log.pending()...)
		}
		for !has(func(e any) bool { _, ok := e.(retry.Scheduled); return ok }) {
			seen = append(seen, log.next())
		}
		var timeoutAt time.Time
		var sched retry.Scheduled
		for _, e := range seen {
			switch e := e.(type) {
			case heartbeat.PongReceived:
				t.Fatalf("trial %d: a pong came through the black hole: %+v", trial, e)
			case heartbeat.Timeout:
				timeoutAt = e.At
			case events.Disconnected:
				if timeoutAt.IsZero() || !errors.Is(e.Err, heartbeat.ErrTimeout) || e.Code != ws.StatusAbnormalClosure {
					t.Fatalf("trial %d: %s before or without the heartbeat timeout", trial, describe(e))
				}
			case retry.Scheduled:
				sched = e
			}
		}
		d := timeoutAt.Sub(onset)
		if timeoutAt.IsZero() || d < hb.Timeout || d > hb.Interval+hb.Timeout {
			t.Fatalf("trial %d: detected %v after the onset, want between %v and %v", trial, d, hb.Timeout, hb.Interval+hb.Timeout)
		}
		detect = append(detect, d)

		// The network heals; the reconnect follows after the first delay.
		px.removeBoth("bh")
		step(t, clock, 1, sched.Delay)
		rc := await[retry.Reconnected](log)
		if want := timeoutAt.Add(sched.Delay); !rc.At.Equal(want) {
			t.Fatalf("trial %d: reconnected at %v, want %v (one delay after the timeout)", trial, rc.At, want)
		}
		recover = append(recover, rc.At.Sub(onset))
	}
	wallPer := time.Since(wall) / time.Duration(trials) // wall time: reported, never asserted

	if err := c.Shutdown(guarded(t), ws.StatusNormalClosure, "bye"); err != nil { // the server answers the close: no wait on the clock
		t.Fatal(err)
	}
	px.stop()
	srv.kill()
	log.close()
	verifyNone(t, ignore)

	slices.Sort(detect)
	slices.Sort(recover)
	var sum time.Duration
	for _, d := range detect {
		sum += d
	}
	t.Logf("black hole, %d trials (interval %v, timeout %v, bound %v): detection min %v, median %v, mean %v, max %v; "+
		"reconnected %d/%d, onset to reconnected min %v, max %v (simulated); wall per trial %v; goroutines back to baseline",
		trials, hb.Interval, hb.Timeout, hb.Interval+hb.Timeout, detect[0], detect[len(detect)/2],
		(sum / time.Duration(len(detect))).Round(time.Second), detect[len(detect)-1],
		len(recover), trials, recover[0], recover[len(recover)-1], wallPer.Round(time.Millisecond))
}
