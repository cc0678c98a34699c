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
// declared missed. Meanwhile a second client, through a second proxy, gets
// 2 s each way once connected, a round trip above the timeout: the
// heartbeat declares it dead, so the first part could fail.
func TestLatencyJitter(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	srv := newServer(t, newLedger(acks, 0))
	px := newProxy(t, srv.addr)
	slow := newProxy(t, srv.addr)
	const latency, jitter = 20 * time.Millisecond, 10 * time.Millisecond
	const above = 2 * time.Second // each way: a round trip of 4 s, above the timeout
	px.both("lat", "latency", map[string]any{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()})
	log, slowLog := newEvlog(t), newEvlog(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	defer cancel()
	// wall time: the proxy's delay is real. A ping every 3 s with a 3 s
	// timeout (the heartbeat allows no timeout above the interval): far
	// above the 60 ms the proxy adds at most, so that a loaded machine (two
	// cores shared with other jobs, the race detector; stalls of 450 ms
	// were seen) cannot pass for a slow network.
	cfg := heartbeat.Config{Interval: 3 * time.Second, Timeout: 3 * time.Second}
	c, err := tether.Dial(ctx, px.url(), tether.WithBus(log.bus), tether.WithHeartbeat(cfg), tether.WithoutRetry())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := tether.Dial(ctx, slow.url(), tether.WithBus(slowLog.bus), tether.WithHeartbeat(cfg), tether.WithoutRetry())
	if err != nil {
		t.Fatal(err)
	}
	// On the live connection: the handshake went through at loopback speed,
	// every ping from now on takes the slow path.
	slow.both("lat", "latency", map[string]any{"latency": above.Milliseconds(), "jitter": 0})

	pongs := scale(2, 10)
	var rtts []time.Duration
	var trace []string
	for len(rtts) < pongs {
		ev := log.next()
		trace = append(trace, fmt.Sprintf("%s %s", time.Now().Format("05.000"), describe(ev))) // wall time: a trace for the failure message
		switch e := ev.(type) {
		case heartbeat.PongReceived:
			rtts = append(rtts, e.RTT)
			if e.RTT < 2*(latency-jitter) {
				t.Errorf("pong %d: RTT %v, below the %v the proxy adds", e.Seq, e.RTT, 2*(latency-jitter))
			}
		case heartbeat.PingMissed, heartbeat.Timeout, events.Disconnected:
			t.Fatalf("false alarm with RTT below the timeout: %s\n%s", describe(e), strings.Join(trace[max(0, len(trace)-12):], "\n"))
		}
	}
	st, ok := heartbeat.StatsOf(c.Conn())
	if !ok || st.RTT < 2*(latency-jitter) {
		t.Errorf("heartbeat.StatsOf(c.Conn()).RTT = %v, %v", st.RTT, ok)
	}
	if err := c.Shutdown(guarded(t), ws.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, r := range rtts {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	t.Logf("latency %v +/- %v each way: %d pongs, RTT min %v, mean %v, max %v; timeout %v: no ping missed",
		latency, jitter, len(rtts), lo.Round(time.Millisecond), (sum / time.Duration(len(rtts))).Round(time.Millisecond),
		hi.Round(time.Millisecond), cfg.Timeout)

	// Above the timeout.
	to := await[heartbeat.Timeout](slowLog)
	<-sc.Done()
	if !errors.Is(sc.Err(), heartbeat.ErrTimeout) {
		t.Fatalf("Err() = %v, want heartbeat.ErrTimeout", sc.Err())
	}
	t.Logf("latency %v each way, timeout %v: declared dead after %d missed ping(s)", above, cfg.Timeout, to.Missed)
	px.stop()
	slow.stop()
	srv.kill()
	log.close()
	slowLog.close()
	verifyNone(t, ignore)
}
