package retry_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/retry"
)

// The default policy is the recipe's schedule: 1, 2, 4, 8, 16 s, then stop.
func ExampleNew() {
	p, err := retry.New()
	if err != nil {
		panic(err)
	}
	var prev, elapsed time.Duration
	for attempt := 1; ; attempt++ {
		d, ok := p.Next(retry.Outage{Attempt: attempt, Prev: prev, Elapsed: elapsed})
		if !ok {
			fmt.Println("give up")
			break
		}
		fmt.Print(d, " ")
		prev, elapsed = d, elapsed+d
	}
	// Output: 1s 2s 4s 8s 16s give up
}

func ExampleExponential() {
	b, err := retry.Exponential(500*time.Millisecond, 2, 4*time.Second)
	if err != nil {
		panic(err)
	}
	var delays []time.Duration
	for attempt := 1; attempt <= 6; attempt++ {
		d, _ := b.Next(attempt)
		delays = append(delays, d)
	}
	fmt.Println(delays)
	_, err = retry.Exponential(time.Second, 2, 0)
	fmt.Println(err)
	// Output:
	// [500ms 1s 2s 4s 4s 4s]
	// retry: invalid policy: Exponential: max must be > 0 (it caps every delay; there is no "no cap"), got 0s
}

// With a seeded source the jittered schedule is reproducible, as in a test.
// In production leave WithRand out.
func ExampleWithJitter() {
	p, err := retry.New(
		retry.WithJitter(retry.FullJitter),
		retry.WithRand(rand.New(rand.NewPCG(1, 2))),
	)
	if err != nil {
		panic(err)
	}
	var prev time.Duration
	for attempt := 1; attempt <= 5; attempt++ {
		d, _ := p.Next(retry.Outage{Attempt: attempt, Prev: prev})
		fmt.Println(d.Round(time.Millisecond))
		prev = d
	}
	// Output:
	// 769ms
	// 1.233s
	// 3.138s
	// 6.373s
	// 3.748s
}

func ExampleParseJitter() {
	j, err := retry.ParseJitter("full")
	fmt.Println(j == retry.FullJitter, err)
	_, err = retry.ParseJitter("sometimes")
	fmt.Println(err)
	// Output:
	// true <nil>
	// retry: invalid policy: unknown jitter "sometimes" (want none, full, equal or decorrelated)
}

// A server that refuses the handshake with Retry-After: 7 is tried again
// after 7 s; any other error gets the backoff's delay.
func ExampleWithHint() {
	p, err := retry.New(retry.WithHint(retry.RetryAfter))
	if err != nil {
		panic(err)
	}
	busy := &core.HandshakeError{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"7"}}}
	d, _ := p.Next(retry.Outage{Attempt: 1, Cause: fmt.Errorf("dial: %w", busy)})
	fmt.Println(d)
	d, _ = p.Next(retry.Outage{Attempt: 1, Cause: errors.New("connection refused")})
	fmt.Println(d)
	// Output:
	// 7s
	// 1s
}

// The schedule a client's supervisor follows, driven by hand on a fake
// clock: tether.Client makes these calls, and waits the delays on its own
// clock. The default policy tries after 1, 2, 4, 8 and 16 s, then gives up.
func ExampleReconnect() {
	clock := clockwork.NewFakeClock()
	sched, err := (&retry.Reconnect{}).Start(core.ClientInfo{ID: "client-1", Clock: clock})
	if err != nil {
		panic(err)
	}
	start := clock.Now()
	for {
		d, err := sched.Lost(errors.New("connection refused"))
		if err != nil {
			fmt.Println(err)
			fmt.Println("matches ErrGaveUp:", errors.Is(err, retry.ErrGaveUp))
			break
		}
		clock.Advance(d)
		fmt.Printf("attempt %d at %v\n", sched.Dialing(), clock.Since(start))
	}
	// Output:
	// attempt 1 at 1s
	// attempt 2 at 3s
	// attempt 3 at 7s
	// attempt 4 at 15s
	// attempt 5 at 31s
	// retry: gave up after 5 attempt(s): connection refused
	// matches ErrGaveUp: true
}
