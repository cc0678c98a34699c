package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// simStart is when the simulated demo begins, on its fake clock.
var simStart = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// simulatedDemo runs the recipe's real timings (a ping every 30 s, dead
// after 10 s without a pong, reconnect after 1, 2, 4, 8, 16 s) on a
// clockwork.FakeClock over loopback sockets: minutes of simulated time in
// well under a second. The server's heartbeat (on by default in tether,
// and in tether serve) is turned off here, so that the client's timers are
// the only ones on the clock and each step knows what it advances; the
// real-time demo runs both.
func simulatedDemo(ctx context.Context, stdout io.Writer, jsonOut, verbose bool) (summary, error) {
	clock := clockwork.NewFakeClockAt(simStart)
	out := &lineWriter{w: stdout, json: jsonOut, start: simStart, stamp: func(t time.Time) string {
		return fmt.Sprintf("%8s", "+"+t.Sub(simStart).String())
	}}
	out.write(clock.Now(), "demo", "demo.start", fmt.Sprintf("simulated time: client -> fault proxy -> server on loopback; ping every %v, pong timeout %v; reconnect after 1, 2, 4, 8, 16 s",
		heartbeat.DefaultInterval, heartbeat.DefaultTimeout), map[string]any{"simulated": true})
	r, err := newRig(ctx, rigConfig{
		clock: clock, out: out, showServerHB: verbose,
		clientHB:   heartbeat.Config{}, // the recipe's: 30 s, 10 s
		clientOpts: []tether.DialOption{tether.WithRetry(retry.Default())},
	})
	if err != nil {
		return summary{}, err
	}
	defer r.close()
	d := &simDriver{r: r, clock: clock, ctx: ctx}
	if err := d.script(); err != nil {
		return summary{}, err
	}
	drain(r.cliBus, r.srvBus)
	s := r.summarize()
	checkScript(&s)
	s.print(out, clock.Now())
	return s, nil
}

// simDriver advances the fake clock one known timer at a time.
type simDriver struct {
	r     *rig
	clock *clockwork.FakeClock
	ctx   context.Context
}

// advance waits until the timer the next step needs is armed, then moves
// the clock by dur. Each step is called only when exactly that timer is
// (or is about to be) on the clock: the live connection's heartbeat timer,
// or the reconnect loop's wait.
func (d *simDriver) advance(dur time.Duration) error {
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second) // wall time: hang guard only
	defer cancel()
	if err := d.clock.BlockUntilContext(ctx, 1); err != nil {
		return fmt.Errorf("demo: no timer armed: %w", err)
	}
	d.clock.Advance(dur)
	return nil
}

// afterLoss advances the clock by a reconnect delay, once the connection
// that was lost has ended on both sides.
func (d *simDriver) afterLoss(delay time.Duration) error {
	if err := d.r.serverIdle(); err != nil {
		return err
	}
	return d.advance(delay)
}

// outage follows the client through one outage: at every scheduled
// attempt it advances the clock by the announced delay. Before attempt
// number recoverAt (0: never) the proxy accepts handshakes again. It
// returns once the client reconnected or gave up.
func (d *simDriver) outage(recoverAt int) error {
	for {
		e, err := await(d.r, func(e events.Event) bool {
			switch e.(type) {
			case retry.Scheduled, retry.Reconnected, retry.GaveUp:
				return true
			}
			return false
		})
		if err != nil {
			return err
		}
		switch e := e.(type) {
		case retry.Scheduled:
			if e.Attempt == recoverAt {
				d.r.fault("recover", "accepts handshakes again", func() { d.r.proxy.Refuse(0) })
			}
			if err := d.afterLoss(e.Delay); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// heartbeatRound lets the heartbeat ping after wait and get its pong, then
// passes the pong timeout check.
func (d *simDriver) heartbeatRound(wait time.Duration) error {
	if err := d.advance(wait); err != nil {
		return err
	}
	if _, err := await(d.r, func(heartbeat.PongReceived) bool { return true }); err != nil {
		return err
	}
	return d.advance(heartbeat.DefaultTimeout)
}

func (d *simDriver) script() error {
	r := d.r
	steps := []func() error{
		func() error { return r.awaitEcho(r.send()) },
		// Two heartbeats answered: at 30 s and 60 s.
		func() error { return d.heartbeatRound(heartbeat.DefaultInterval) },
		func() error { return d.heartbeatRound(heartbeat.DefaultInterval - heartbeat.DefaultTimeout) },
		func() error { return r.awaitEcho(r.send()) },
		// 1m10s: the connection drops; what is sent meanwhile is queued and
		// delivered after the reconnect.
		func() error {
			r.fault("drop", "drops every connection (no close frame)", func() { r.proxy.Drop() })
			if _, err := await(d.r, func(retry.Scheduled) bool { return true }); err != nil {
				return err
			}
			a, b := r.send(), r.send()
			if err := d.afterLoss(time.Second); err != nil {
				return err
			}
			if err := r.awaitEcho(a); err != nil {
				return err
			}
			return r.awaitEcho(b)
		},
		// 1m11s: a black hole. A message written into it is lost; the next
		// ping, 30 s later, goes unanswered and the peer is declared dead
		// 10 s after it.
		func() error {
			r.fault("blackhole", "black-holes every connection: bytes vanish, sockets stay open", func() { r.proxy.BlackHole() })
			r.send()
			if err := d.advance(heartbeat.DefaultInterval); err != nil {
				return err
			}
			if _, err := await(d.r, func(heartbeat.PingSent) bool { return true }); err != nil {
				return err
			}
			if err := d.advance(heartbeat.DefaultTimeout); err != nil {
				return err
			}
			if _, err := await(d.r, func(retry.Scheduled) bool { return true }); err != nil {
				return err
			}
			m := r.send()
			if err := d.afterLoss(time.Second); err != nil {
				return err
			}
			return r.awaitEcho(m)
		},
		// Handshakes refused with 503 for three attempts (1, 2, 4 s); the
		// fourth, 8 s later, gets through.
		func() error {
			r.fault("refuse", "refuses handshakes with 503, and drops", func() { r.proxy.Refuse(http.StatusServiceUnavailable); r.proxy.Drop() })
			if _, err := await(d.r, func(retry.Scheduled) bool { return true }); err != nil {
				return err
			}
			m := r.send()
			if err := d.afterLoss(time.Second); err != nil {
				return err
			}
			if err := d.outage(4); err != nil {
				return err
			}
			return r.awaitEcho(m)
		},
		// The server goes away for good: 1, 2, 4, 8, 16 s, then the client
		// gives up and returns what it could not send.
		func() error {
			r.fault("gone", "refuses handshakes for good, and drops", func() { r.proxy.Refuse(http.StatusServiceUnavailable); r.proxy.Drop() })
			if _, err := await(d.r, func(events.Disconnected) bool { return true }); err != nil {
				return err
			}
			r.send()
			r.send()
			if err := d.outage(0); err != nil {
				return err
			}
			<-r.client.Done()
			return nil
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
