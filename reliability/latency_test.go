package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// Latency and jitter on the link, on the real clock (the round trip is the
// proxy's real delay: a fake clock would measure 0). 20 ms +/- 10 ms each
// way: every pong is reported with an RTT of at least the 20 ms the two
// delays add up to, and with a timeout well above the RTT no ping is ever
// declared missed. Then the same link with 600 ms each way, a round trip
// above the timeout: the heartbeat declares it dead, so the first part
// could fail.
func TestLatencyJitter(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	srv := newServer(t, newLedger(acks, 0))
	px := newProxy(t, srv.addr)
	const latency, jitter = 20 * time.Millisecond, 10 * time.Millisecond
	px.both("lat", "latency", map[string]any{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()})
	log := newEvlog(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	defer cancel()
	// wall time: the proxy's delay is real. A ping a second with a 1 s
	// timeout: far above the 60 ms the proxy adds at most, so that a
	// loaded machine (two cores shared with other jobs, the race detector;
	// stalls of 450 ms were seen with a 500 ms timeout) cannot pass for a
	// slow network.
	cfg := heartbeat.Config{Interval: time.Second, Timeout: time.Second}
	c, err := tether.Dial(ctx, px.url(), tether.WithBus(log.bus), tether.WithHeartbeat(cfg), tether.WithRetry(nil))
	if err != nil {
		t.Fatal(err)
	}
	pongs := scale(3, 20)
	var rtts []time.Duration
	var trace []string
	for len(rtts) < pongs {
		ev := log.next()
		trace = append(trace, fmt.Sprintf("%s %s", time.Now().Format("05.000"), describe(ev)))
		switch e := ev.(type) {
		case events.PongReceived:
			rtts = append(rtts, e.RTT)
			if e.RTT < 2*(latency-jitter) {
				t.Errorf("pong %d: RTT %v, below the %v the proxy adds", e.Seq, e.RTT, 2*(latency-jitter))
			}
		case events.HeartbeatMissed, events.HeartbeatTimeout, events.Disconnected:
			t.Fatalf("false alarm with RTT below the timeout: %s\n%s", describe(e), strings.Join(trace[max(0, len(trace)-12):], "\n"))
		}
	}
	rtt, ok := c.RTT()
	if !ok || rtt < 2*(latency-jitter) {
		t.Errorf("Client.RTT() = %v, %v", rtt, ok)
	}
	if err := c.Close(ws.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, r := range rtts {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	t.Logf("latency %v +/- %v each way: %d pongs, RTT min %v, mean %v, max %v; timeout %v: no ping missed",
		latency, jitter, len(rtts), lo.Round(time.Millisecond), (sum / time.Duration(len(rtts))).Round(time.Millisecond),
		hi.Round(time.Millisecond), cfg.Timeout)

	// Above the timeout: 600 ms each way, a round trip of 1.2 s.
	px.removeBoth("lat")
	px.both("lat", "latency", map[string]any{"latency": 600, "jitter": 0})
	c, err = tether.Dial(ctx, px.url(), tether.WithBus(log.bus), tether.WithHeartbeat(cfg), tether.WithRetry(nil))
	if err != nil {
		t.Fatal(err)
	}
	to := await[events.HeartbeatTimeout](log)
	<-c.Done()
	if !errors.Is(c.Err(), heartbeat.ErrTimeout) {
		t.Fatalf("Err() = %v, want heartbeat.ErrTimeout", c.Err())
	}
	t.Logf("latency 600 ms each way, timeout %v: declared dead after %d missed ping(s)", cfg.Timeout, to.Missed)
	px.stop()
	srv.kill()
	log.close()
	verifyNone(t, ignore)
}
