package retry_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherws/tether/retry"
)

const s = time.Second

// schedule returns the delays p gives for attempts 1..n, or until it stops,
// with prev and elapsed carried the way a reconnect loop carries them.
func schedule(p *retry.Policy, n int) []time.Duration {
	var out []time.Duration
	var prev, elapsed time.Duration
	for attempt := 1; attempt <= n; attempt++ {
		d, ok := p.Next(retry.Outage{Attempt: attempt, Prev: prev, Elapsed: elapsed})
		if !ok {
			break
		}
		out = append(out, d)
		prev, elapsed = d, elapsed+d
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDefaultSchedule(t *testing.T) {
	want := []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s}
	var zero retry.Policy
	for name, p := range map[string]*retry.Policy{
		"New()":     must[*retry.Policy](t)(retry.New()),
		"Default()": retry.Default(),
		"nil":       nil,
		"zero":      &zero,
	} {
		if got := schedule(p, 100); !equalDurations(got, want) {
			t.Errorf("%s: schedule %v, want %v", name, got, want)
		}
		if d, ok := p.Next(retry.Outage{Attempt: 6, Prev: 16 * s, Elapsed: 31 * s}); ok || d != 0 {
			t.Errorf("%s: Next(6) = %v, %v; want 0, false", name, d, ok)
		}
		if d, ok := p.Next(retry.Outage{Attempt: 0}); !ok || d != s {
			t.Errorf("%s: Next(0) = %v, %v; want 1s, true", name, d, ok)
		}
		if got := p.MaxAttempts(); got != retry.DefaultMaxAttempts {
			t.Errorf("%s: MaxAttempts() = %d", name, got)
		}
		if got := p.StableAfter(); got != 0 {
			t.Errorf("%s: StableAfter() = %v", name, got)
		}
	}
}

func TestPolicySchedules(t *testing.T) {
	capped := must[retry.Backoff](t)(retry.Exponential(s, 2, 10*s))
	constant := must[retry.Backoff](t)(retry.Constant(3 * s))
	stopAt3 := must[retry.Backoff](t)(retry.Func(func(n int) (time.Duration, bool) { return s, n < 3 }))
	negative := must[retry.Backoff](t)(retry.Func(func(n int) (time.Duration, bool) { return -time.Duration(n) * s, true }))
	minDur := retry.BackoffFunc(func(int) (time.Duration, bool) { return math.MinInt64, true })
	tests := []struct {
		name string
		opts []retry.Option
		want []time.Duration
	}{
		{"capped, 7 attempts", []retry.Option{retry.WithBackoff(capped), retry.WithMaxAttempts(7)},
			[]time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s, 10 * s}},
		{"one attempt", []retry.Option{retry.WithMaxAttempts(1)}, []time.Duration{s}},
		{"backoff stops first", []retry.Option{retry.WithBackoff(stopAt3)}, []time.Duration{s, s}},
		{"negative delays count as 0", []retry.Option{retry.WithBackoff(negative), retry.WithMaxAttempts(3)},
			[]time.Duration{0, 0, 0}},
		{"min duration counts as 0", []retry.Option{retry.WithBackoff(minDur), retry.WithMaxAttempts(2), retry.WithJitter(retry.FullJitter)},
			[]time.Duration{0, 0}},
		// Max elapsed: 1+2+4 = 7 <= 10, and 7+8 > 10, so three attempts.
		{"max elapsed", []retry.Option{retry.WithMaxElapsed(10 * s)}, []time.Duration{1 * s, 2 * s, 4 * s}},
		// Exactly reaching the limit is allowed: 1+2+4 = 7.
		{"max elapsed, exact", []retry.Option{retry.WithMaxElapsed(7 * s)}, []time.Duration{1 * s, 2 * s, 4 * s}},
		{"max elapsed below first delay", []retry.Option{retry.WithMaxElapsed(s / 2)}, nil},
		{"max elapsed 0 = no limit", []retry.Option{retry.WithMaxElapsed(0)}, []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s}},
		{"max elapsed with unlimited attempts", []retry.Option{retry.WithBackoff(constant), retry.WithMaxAttempts(retry.Unlimited), retry.WithMaxElapsed(10 * s)},
			[]time.Duration{3 * s, 3 * s, 3 * s}},
		{"later option wins", []retry.Option{retry.WithMaxAttempts(1), retry.WithMaxAttempts(2)}, []time.Duration{1 * s, 2 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := must[*retry.Policy](t)(retry.New(tt.opts...))
			if got := schedule(p, 1000); !equalDurations(got, tt.want) {
				t.Errorf("schedule %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMaxElapsedExtremes(t *testing.T) {
	p := must[*retry.Policy](t)(retry.New(retry.WithMaxElapsed(time.Minute)))
	for _, elapsed := range []time.Duration{time.Minute, time.Hour, math.MaxInt64} {
		if d, ok := p.Next(retry.Outage{Attempt: 1, Elapsed: elapsed}); ok {
			t.Errorf("Next(1, 0, %v) = %v, true; want false", elapsed, d)
		}
	}
	for _, elapsed := range []time.Duration{-time.Hour, math.MinInt64} {
		if d, ok := p.Next(retry.Outage{Attempt: 1, Elapsed: elapsed}); !ok || d != s {
			t.Errorf("Next(1, 0, %v) = %v, %v; negative elapsed should count as 0", elapsed, d, ok)
		}
	}
}

func TestUnlimited(t *testing.T) {
	p := must[*retry.Policy](t)(retry.New(retry.WithMaxAttempts(retry.Unlimited)))
	if got := p.MaxAttempts(); got != retry.Unlimited {
		t.Errorf("MaxAttempts() = %d, want Unlimited", got)
	}
	for _, n := range []int{1, 5, 6, 1000, math.MaxInt} {
		want := min(time.Duration(1<<min(n-1, 10))*s, retry.DefaultMax)
		if d, ok := p.Next(retry.Outage{Attempt: n}); !ok || d != want {
			t.Errorf("Next(%d) = %v, %v; want %v, true", n, d, ok, want)
		}
	}
}

func TestStableAfter(t *testing.T) {
	p := must[*retry.Policy](t)(retry.New(retry.WithStableAfter(10 * s)))
	if got := p.StableAfter(); got != 10*s {
		t.Errorf("StableAfter() = %v, want 10s", got)
	}
}

// The previous delay reaches the jitter: decorrelated jitter grows from it.
func TestPolicyPassesPrev(t *testing.T) {
	j := must[retry.Jitter](t)(retry.DecorrelatedJitter(s, time.Hour))
	p := must[*retry.Policy](t)(retry.New(retry.WithJitter(j), retry.WithRand(newRand(t, 1))))
	for range 1000 {
		if d, _ := p.Next(retry.Outage{Attempt: 1, Prev: 100 * s}); d < s || d > 300*s {
			t.Fatalf("Next with prev 100s = %v, want in [1s, 300s]", d)
		}
		if d, _ := p.Next(retry.Outage{Attempt: 1, Prev: -s}); d < s || d > 3*s {
			t.Fatalf("Next with prev -1s = %v, want in [1s, 3s]", d)
		}
	}
}

func TestPolicyJitterIsSeeded(t *testing.T) {
	run := func() []time.Duration {
		p := must[*retry.Policy](t)(retry.New(retry.WithJitter(retry.FullJitter), retry.WithRand(newRand(t, 1)), retry.WithMaxAttempts(50)))
		return schedule(p, 50)
	}
	a, b := run(), run()
	if len(a) != 50 || !equalDurations(a, b) {
		t.Errorf("same seed, different schedules:\n%v\n%v", a, b)
	}
}

func TestOptionBadInput(t *testing.T) {
	tests := []struct {
		name string
		opt  retry.Option
	}{
		{"nil option", nil},
		{"nil backoff", retry.WithBackoff(nil)},
		{"nil backoff func", retry.WithBackoff(retry.BackoffFunc(nil))},
		{"nil jitter", retry.WithJitter(nil)},
		{"nil rand", retry.WithRand(nil)},
		{"zero attempts", retry.WithMaxAttempts(0)},
		{"-2 attempts", retry.WithMaxAttempts(-2)},
		{"min int attempts", retry.WithMaxAttempts(math.MinInt)},
		{"negative max elapsed", retry.WithMaxElapsed(-s)},
		{"negative stable after", retry.WithStableAfter(-1)},
		{"nil hint", retry.WithHint(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := retry.New(retry.WithMaxAttempts(3), tt.opt)
			if !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
			if p != nil {
				t.Error("New returned a Policy with an error")
			}
		})
	}
}

func TestNewReportsEveryError(t *testing.T) {
	_, err := retry.New(retry.WithMaxAttempts(0), retry.WithJitter(nil), retry.WithStableAfter(-1))
	for _, want := range []string{"WithMaxAttempts", "WithJitter(nil)", "WithStableAfter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %s", err, want)
		}
	}
}

// One Policy with a user Rand that is not safe for concurrent use, shared
// by many goroutines: the race detector fails this if the Policy does not
// guard the source.
func TestPolicyConcurrent(t *testing.T) {
	p := must[*retry.Policy](t)(retry.New(
		retry.WithJitter(retry.FullJitter),
		retry.WithMaxAttempts(retry.Unlimited),
		retry.WithRand(newRand(t, 1)),
	))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			var prev time.Duration
			for n := range 1000 {
				d, ok := p.Next(retry.Outage{Attempt: n%10 + 1, Prev: prev})
				if !ok || d < 0 || d > retry.DefaultMax {
					t.Errorf("Next = %v, %v", d, ok)
					return
				}
				prev = d
			}
		})
	}
	wg.Wait()
}
