package retry_test

import (
	"fmt"
	"math/rand/v2"
	"time"

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
		d, ok := p.Next(attempt, prev, elapsed)
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
		d, _ := p.Next(attempt, prev, 0)
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
