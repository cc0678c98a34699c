package retry_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherws/tether/retry"
)

// The thundering herd, simulated: a fleet of clients all lose their
// connection at t=0 to a server that is down for the first 60 s. Each
// client retries by the policy (default exponential backoff capped at 30 s,
// unlimited attempts); every attempt before 60 s fails at once, the first
// at or after 60 s succeeds. Pure arithmetic: no clock, no goroutine.
const (
	fleetSize   = 10_000
	serverDown  = 60 * time.Second
	fleetWindow = 100 * time.Millisecond
)

type fleetResult struct {
	strategy string
	peak     int           // most attempts landing in one window
	peakAt   time.Duration // start of the first such window
	peakUp   int           // most attempts in one window once the server is up
	attempts int           // attempts by the whole fleet
	median   time.Duration // half the fleet is reconnected by then
	all      time.Duration // the whole fleet is reconnected by then
}

func simulateFleet(t *testing.T, strategy string, j retry.Jitter) fleetResult {
	p := must[*retry.Policy](t)(retry.New(
		retry.WithJitter(j),
		retry.WithMaxAttempts(retry.Unlimited),
		retry.WithRand(rand.New(rand.NewPCG(1, 2))),
	))
	perWindow := map[time.Duration]int{}
	done := make([]time.Duration, 0, fleetSize)
	res := fleetResult{strategy: strategy}
	for range fleetSize {
		var now, prev time.Duration
		for attempt := 1; ; attempt++ {
			d, ok := p.Next(retry.Outage{Attempt: attempt, Prev: prev, Elapsed: now})
			if !ok {
				t.Fatalf("%s: gave up at attempt %d with unlimited attempts", strategy, attempt)
			}
			now += d
			prev = d
			perWindow[now/fleetWindow]++
			res.attempts++
			if now >= serverDown {
				done = append(done, now)
				break
			}
		}
	}
	for w, n := range perWindow {
		if n > res.peak || n == res.peak && w*fleetWindow < res.peakAt {
			res.peak, res.peakAt = n, w*fleetWindow
		}
		if w*fleetWindow >= serverDown {
			res.peakUp = max(res.peakUp, n)
		}
	}
	slices.Sort(done)
	res.median, res.all = done[len(done)/2], done[len(done)-1]
	return res
}

func TestFleet(t *testing.T) {
	decorrelated := must[retry.Jitter](t)(retry.DecorrelatedJitter(retry.DefaultBase, retry.DefaultMax))
	strategies := []struct {
		name string
		j    retry.Jitter
	}{
		{"none", retry.NoJitter},
		{"full", retry.FullJitter},
		{"equal", retry.EqualJitter},
		{"decorrelated", decorrelated},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d clients lose the connection at t=0; the server is down until t=%v;\n", fleetSize, serverDown)
	fmt.Fprintf(&b, "backoff Exponential(1s, 2, 30s), unlimited attempts; peak = most attempts in one %v window,\n", fleetWindow)
	fmt.Fprintf(&b, "peak once up = the same from t=%v on, the load a recovering server sees.\n\n", serverDown)
	fmt.Fprintf(&b, "| jitter       | peak / %v | peak share | peak window at | peak once up | attempts | half reconnected | all reconnected |\n", fleetWindow)
	fmt.Fprintf(&b, "|--------------|--------------|------------|----------------|--------------|----------|------------------|-----------------|\n")
	results := map[string]fleetResult{}
	for _, st := range strategies {
		r := simulateFleet(t, st.name, st.j)
		results[st.name] = r
		fmt.Fprintf(&b, "| %-12s | %12d | %9.1f%% | %14v | %12d | %8d | %16v | %15v |\n",
			r.strategy, r.peak, 100*float64(r.peak)/fleetSize, r.peakAt.Round(time.Millisecond),
			r.peakUp, r.attempts, r.median.Round(time.Millisecond), r.all.Round(time.Millisecond))
	}
	t.Log(b.String())

	for name, r := range results {
		if r.all < serverDown || r.median < serverDown {
			t.Errorf("%s: reconnected before the server came back: %+v", name, r)
		}
	}
	// Without jitter the whole fleet retries in lockstep: every attempt of
	// every client lands in the same window, also when the server is back.
	if r := results["none"]; r.peak != fleetSize || r.peakUp != fleetSize {
		t.Errorf("no jitter: peaks %d and %d once up, want the whole fleet (%d)", r.peak, r.peakUp, fleetSize)
	}
	// Full jitter draws the first retry from [0, 1s], ten windows, so about
	// a tenth of the fleet lands in each, plus early second attempts (the
	// expected peak is near 15.5%). Once the server is up, every strategy
	// has spread the fleet over many seconds.
	if r := results["full"]; r.peak > fleetSize/5 {
		t.Errorf("full jitter: peak %d, want at most a fifth of the fleet (%d)", r.peak, fleetSize/5)
	}
	for _, name := range []string{"full", "equal", "decorrelated"} {
		if r := results[name]; r.peakUp > fleetSize/50 {
			t.Errorf("%s jitter: peak once up %d, want at most 2%% of the fleet (%d)", name, r.peakUp, fleetSize/50)
		}
	}
}
