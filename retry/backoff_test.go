package retry_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/tetherws/tether/retry"
)

func TestExponential(t *testing.T) {
	tests := []struct {
		name    string
		base    time.Duration
		factor  float64
		max     time.Duration
		attempt int
		want    time.Duration
	}{
		{"first", time.Second, 2, 30 * time.Second, 1, time.Second},
		{"second", time.Second, 2, 30 * time.Second, 2, 2 * time.Second},
		{"fifth", time.Second, 2, 30 * time.Second, 5, 16 * time.Second},
		{"sixth reaches the cap", time.Second, 2, 30 * time.Second, 6, 30 * time.Second},
		{"capped", time.Second, 2, 10 * time.Second, 5, 10 * time.Second},
		{"just below the cap", time.Second, 2, 10 * time.Second, 4, 8 * time.Second},
		{"huge attempt saturates", time.Second, 2, 10 * time.Second, 10_000, 10 * time.Second},
		{"max int attempt", time.Second, 2, 10 * time.Second, math.MaxInt, 10 * time.Second},
		{"max duration cap", time.Second, 2, math.MaxInt64, 10_000, math.MaxInt64},
		{"max duration cap, 62 doublings", 1, 2, math.MaxInt64, 63, 1 << 62},
		{"max duration cap, 63 doublings", 1, 2, math.MaxInt64, 64, math.MaxInt64},
		{"factor 1 is constant", time.Second, 1, 10 * time.Second, 7, time.Second},
		{"factor 1, huge attempt", time.Second, 1, 10 * time.Second, math.MaxInt, time.Second},
		{"fractional factor", time.Second, 1.5, time.Minute, 3, 2250 * time.Millisecond},
		{"attempt 0 counts as 1", time.Second, 2, 10 * time.Second, 0, time.Second},
		{"negative attempt counts as 1", time.Second, 2, 10 * time.Second, -5, time.Second},
		{"min int attempt", time.Second, 2, 10 * time.Second, math.MinInt, time.Second},
		{"base equals max", time.Second, 3, time.Second, 4, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := must[retry.Backoff](t)(retry.Exponential(tt.base, tt.factor, tt.max))
			got, ok := b.Next(tt.attempt)
			if !ok || got != tt.want {
				t.Errorf("Next(%d) = %v, %v; want %v, true", tt.attempt, got, ok, tt.want)
			}
		})
	}
}

// The delay never decreases and never leaves [base, max], whatever the
// attempt number.
func TestExponentialMonotonic(t *testing.T) {
	for _, factor := range []float64{1, 1.1, 1.5, 2, 10, 1e300} {
		b := must[retry.Backoff](t)(retry.Exponential(time.Millisecond, factor, time.Hour))
		var prev time.Duration
		for n := 1; n < 5000; n++ {
			d, ok := b.Next(n)
			if !ok || d < prev || d < time.Millisecond || d > time.Hour {
				t.Fatalf("factor %v: Next(%d) = %v, %v after %v", factor, n, d, ok, prev)
			}
			prev = d
		}
	}
}

func TestConstant(t *testing.T) {
	b := must[retry.Backoff](t)(retry.Constant(3 * time.Second))
	for _, n := range []int{math.MinInt, 0, 1, 2, 100, math.MaxInt} {
		if d, ok := b.Next(n); !ok || d != 3*time.Second {
			t.Errorf("Next(%d) = %v, %v; want 3s, true", n, d, ok)
		}
	}
}

func TestFunc(t *testing.T) {
	var got []int
	b := must[retry.Backoff](t)(retry.Func(func(n int) (time.Duration, bool) {
		got = append(got, n)
		return time.Duration(n) * time.Second, n < 3
	}))
	for _, n := range []int{-1, 0, 1, 3} {
		b.Next(n)
	}
	want := []int{1, 1, 1, 3}
	if len(got) != len(want) {
		t.Fatalf("fn saw %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fn saw %v, want %v", got, want)
		}
	}
	if _, ok := b.Next(3); ok {
		t.Error("Next(3) = true, want the func's false")
	}
}

func TestNilBackoffFuncStops(t *testing.T) {
	if d, ok := retry.BackoffFunc(nil).Next(1); ok || d != 0 {
		t.Errorf("BackoffFunc(nil).Next(1) = %v, %v; want 0, false", d, ok)
	}
}

func TestBackoffBadInput(t *testing.T) {
	tests := []struct {
		name string
		make func() (retry.Backoff, error)
	}{
		{"exponential zero base", func() (retry.Backoff, error) { return retry.Exponential(0, 2, time.Second) }},
		{"exponential negative base", func() (retry.Backoff, error) { return retry.Exponential(-time.Second, 2, time.Second) }},
		{"exponential factor below 1", func() (retry.Backoff, error) { return retry.Exponential(time.Second, 0.5, time.Minute) }},
		{"exponential zero factor", func() (retry.Backoff, error) { return retry.Exponential(time.Second, 0, time.Minute) }},
		{"exponential negative factor", func() (retry.Backoff, error) { return retry.Exponential(time.Second, -2, time.Minute) }},
		{"exponential NaN factor", func() (retry.Backoff, error) { return retry.Exponential(time.Second, math.NaN(), time.Minute) }},
		{"exponential +Inf factor", func() (retry.Backoff, error) { return retry.Exponential(time.Second, math.Inf(1), time.Minute) }},
		{"exponential -Inf factor", func() (retry.Backoff, error) { return retry.Exponential(time.Second, math.Inf(-1), time.Minute) }},
		{"exponential zero max", func() (retry.Backoff, error) { return retry.Exponential(time.Second, 2, 0) }},
		{"exponential negative max", func() (retry.Backoff, error) { return retry.Exponential(time.Second, 2, -time.Second) }},
		{"exponential max below base", func() (retry.Backoff, error) { return retry.Exponential(time.Second, 2, time.Millisecond) }},
		{"constant zero", func() (retry.Backoff, error) { return retry.Constant(0) }},
		{"constant negative", func() (retry.Backoff, error) { return retry.Constant(-time.Second) }},
		{"nil func", func() (retry.Backoff, error) { return retry.Func(nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.make()
			if !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
			if b != nil {
				t.Errorf("Backoff = %v, want nil with an error", b)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := retry.Exponential(time.Second, 2, 0)
	const want = `retry: invalid policy: Exponential: max must be > 0 (it caps every delay; there is no "no cap"), got 0s`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
