package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var simulated, jsonOut, verbose bool
	fs := newFlagSet("demo", "tether demo [--simulated] [--json] [--verbose]")
	fs.BoolVar(&simulated, "simulated", false, "replay the recipe's real timings (30 s pings, 1-2-4-8-16 s) on a fake clock, in an instant")
	fs.BoolVar(&jsonOut, "json", false, "print the timeline and the summary as JSON lines")
	fs.BoolVar(&verbose, "verbose", false, "also print the server's own pings and pongs")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	defer func() {
		if jsonOut && err != nil {
			err = &jsonExit{err: err}
		}
	}()
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	var s summary
	if simulated {
		s, err = simulatedDemo(ctx, stdout, jsonOut, verbose)
	} else {
		s, err = realtimeDemo(ctx, stdout, jsonOut, verbose)
	}
	if ctx.Err() != nil { // interrupted (Ctrl-C): not a failure, as with serve and connect
		return nil
	}
	if err != nil {
		return err
	}
	if len(s.Problems) > 0 {
		return fmt.Errorf("demo: %s", strings.Join(s.Problems, "; "))
	}
	return nil
}

// The real-time demo's compressed timings: the recipe's 30 s heartbeat and
// 1-2-4-8-16 s schedule, 8 to 30 times faster.
const (
	rtPing        = time.Second
	rtPongTimeout = 500 * time.Millisecond
	rtRetryBase   = 125 * time.Millisecond
	rtSendEvery   = 250 * time.Millisecond
)

// realtimeDemo runs the script on the real clock: about 18 s.
func realtimeDemo(ctx context.Context, stdout io.Writer, jsonOut, verbose bool) (summary, error) {
	clock := clockwork.NewRealClock()
	start := clock.Now()
	out := &lineWriter{w: stdout, json: jsonOut, start: start, stamp: func(t time.Time) string { return fmt.Sprintf("%7.3fs", t.Sub(start).Seconds()) }}
	backoff, err := retry.Exponential(rtRetryBase, 2, 30*time.Second)
	if err != nil {
		return summary{}, err
	}
	policy, err := retry.New(retry.WithBackoff(backoff))
	if err != nil {
		return summary{}, err
	}
	out.write(clock.Now(), "demo", "demo.start", fmt.Sprintf("client -> fault proxy -> server on loopback; ping every %v, pong timeout %v; reconnect after %v, doubling, 5 attempts; a message every %v",
		rtPing, rtPongTimeout, rtRetryBase, rtSendEvery), map[string]any{"simulated": false})
	r, err := newRig(ctx, rigConfig{
		clock: clock, out: out, showServerHB: verbose,
		clientHB: heartbeat.Config{Interval: rtPing, Timeout: rtPongTimeout},
		serverHB: heartbeat.Config{Interval: 2 * rtPing, Timeout: 2 * rtPongTimeout}, serverHBOn: true,
		clientOpts: []tether.DialOption{tether.WithRetry(policy), tether.WithHandshakeTimeout(2 * time.Second)},
	})
	if err != nil {
		return summary{}, err
	}
	defer r.close()

	script := []struct {
		at time.Duration
		do func()
	}{
		{3 * time.Second, func() { r.fault("drop", "drops every connection (no close frame)", func() { r.proxy.Drop() }) }},
		{6 * time.Second, func() {
			r.fault("blackhole", "black-holes every connection: bytes vanish, sockets stay open", func() { r.proxy.BlackHole() })
		}},
		{10 * time.Second, func() {
			r.fault("refuse", "refuses handshakes with 503 for 1.5 s, and drops", func() { r.proxy.Refuse(http.StatusServiceUnavailable); r.proxy.Drop() })
		}},
		{11500 * time.Millisecond, func() {
			r.fault("recover", "accepts handshakes again", func() { r.proxy.Refuse(0) })
		}},
		{14 * time.Second, func() {
			r.fault("gone", "refuses handshakes for good, and drops", func() { r.proxy.Refuse(http.StatusServiceUnavailable); r.proxy.Drop() })
		}},
	}
	tick := clock.NewTicker(rtSendEvery)
	defer tick.Stop()
	step := 0
	var next clockwork.Timer
	arm := func() {
		if step < len(script) {
			next = clock.NewTimer(script[step].at - clock.Since(start))
		}
	}
	arm()
	deadline := clock.NewTimer(25 * time.Second) // the script ends with a give-up near 18 s
	defer deadline.Stop()
	for done := false; !done; {
		var nextC <-chan time.Time
		if step < len(script) {
			nextC = next.Chan()
		}
		select {
		case <-tick.Chan():
			r.send()
		case <-nextC:
			script[step].do()
			step++
			arm()
		case <-r.client.Done():
			done = true
		case <-deadline.Chan():
			done = true
		case <-ctx.Done():
			return summary{}, ctx.Err()
		}
	}
	drain(r.cliBus, r.srvBus)
	s := r.summarize()
	checkScript(&s)
	s.print(out, clock.Now())
	return s, nil
}

// checkScript adds to s.Problems whatever the demo's script (either one)
// should have caused and did not.
func checkScript(s *summary) {
	if s.DeadPeers < 1 {
		s.Problems = append(s.Problems, "the black hole was not detected by the heartbeat")
	}
	if s.Reconnects < 3 {
		s.Problems = append(s.Problems, fmt.Sprintf("%d reconnects, want 3 (after the drop, the black hole and the refusals)", s.Reconnects))
	}
	if !s.GaveUp || s.GaveUpAttempts != retry.DefaultMaxAttempts {
		s.Problems = append(s.Problems, fmt.Sprintf("the client did not give up after %d attempts", retry.DefaultMaxAttempts))
	}
	// At least one refusal in the refusal phase (how many depends on the
	// real clock), and every attempt once the server is gone for good.
	if s.Refused < 1+retry.DefaultMaxAttempts {
		s.Problems = append(s.Problems, fmt.Sprintf("%d handshakes refused, want at least %d", s.Refused, 1+retry.DefaultMaxAttempts))
	}
	if s.Queued == 0 || s.Delivered == 0 {
		s.Problems = append(s.Problems, "no message was queued while reconnecting and then delivered")
	}
}
