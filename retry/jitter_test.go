package retry_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tetherws/tether/retry"
)

// checkedRand is a seeded source that fails the test if Int64N is called
// with n <= 0 (math/rand/v2 would panic).
type checkedRand struct {
	t testing.TB
	r *rand.Rand
}

func newRand(t testing.TB, seed uint64) *checkedRand {
	return &checkedRand{t: t, r: rand.New(rand.NewPCG(seed, 2))}
}

func (c *checkedRand) Int64N(n int64) int64 {
	if n <= 0 {
		c.t.Errorf("Int64N(%d) called with n <= 0", n)
		return 0
	}
	return c.r.Int64N(n)
}

func TestJitterBounds(t *testing.T) {
	decorrelated := must[retry.Jitter](t)(retry.DecorrelatedJitter(time.Second, 30*time.Second))
	spread20 := must[retry.Jitter](t)(retry.SpreadJitter(0.2))
	spread100 := must[retry.Jitter](t)(retry.SpreadJitter(1))
	const s = time.Second
	tests := []struct {
		name    string
		j       retry.Jitter
		d, prev time.Duration
		lo, hi  time.Duration
	}{
		{"full", retry.FullJitter, 10 * s, 0, 0, 10 * s},
		{"full, tiny d", retry.FullJitter, 1000, 0, 0, 1000},
		{"equal", retry.EqualJitter, 10 * s, 0, 5 * s, 10 * s},
		{"equal, odd d", retry.EqualJitter, 1001, 0, 501, 1001},
		{"decorrelated, first attempt", decorrelated, 10 * s, 0, s, 3 * s},
		{"decorrelated, prev below base", decorrelated, 10 * s, s / 2, s, 3 * s},
		{"decorrelated, prev 4s", decorrelated, 10 * s, 4 * s, s, 12 * s},
		{"decorrelated, capped", decorrelated, 10 * s, 20 * s, s, 30 * s},
		{"spread 0.2", spread20, 10 * s, 0, 8 * s, 12 * s},
		{"spread 1", spread100, 10 * s, 0, 0, 20 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRand(t, 1)
			const draws = 10_000
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			var sum float64
			seen := map[time.Duration]bool{}
			for range draws {
				d := tt.j.Apply(tt.d, tt.prev, r)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("Apply(%v, %v) = %v, outside [%v, %v]", tt.d, tt.prev, d, tt.lo, tt.hi)
				}
				lo, hi = min(lo, d), max(hi, d)
				sum += float64(d)
				seen[d] = true
			}
			// The draws cover the range: both ends come within 1% of it,
			// the mean sits near the middle, and few values repeat.
			width := float64(tt.hi - tt.lo)
			if float64(lo-tt.lo) > width/100 || float64(tt.hi-hi) > width/100 {
				t.Errorf("draws spanned [%v, %v], want about [%v, %v]", lo, hi, tt.lo, tt.hi)
			}
			mean, mid := sum/draws, float64(tt.lo+tt.hi)/2
			if math.Abs(mean-mid) > width/50 {
				t.Errorf("mean %v, want about %v", time.Duration(mean), time.Duration(mid))
			}
			if want := min(draws/2, int(tt.hi-tt.lo)/2); len(seen) < want {
				t.Errorf("%d distinct values in %d draws, want >= %d", len(seen), draws, want)
			}
		})
	}
}

func allJitters(t *testing.T) map[string]retry.Jitter {
	return map[string]retry.Jitter{
		"none":         retry.NoJitter,
		"full":         retry.FullJitter,
		"equal":        retry.EqualJitter,
		"decorrelated": must[retry.Jitter](t)(retry.DecorrelatedJitter(time.Second, 30*time.Second)),
		"spread":       must[retry.Jitter](t)(retry.SpreadJitter(0.5)),
	}
}

func TestNoJitter(t *testing.T) {
	r := newRand(t, 1)
	for _, d := range []time.Duration{0, 1, time.Second, math.MaxInt64} {
		if got := retry.NoJitter.Apply(d, 5*time.Second, r); got != d {
			t.Errorf("NoJitter.Apply(%v) = %v", d, got)
		}
	}
}

// At d == 0 every strategy but decorrelated (which ignores d) returns 0,
// without calling Int64N(0), which would panic.
func TestJitterZeroAndNegative(t *testing.T) {
	for name, j := range allJitters(t) {
		if name == "decorrelated" {
			continue
		}
		for _, d := range []time.Duration{0, -1, -time.Hour, math.MinInt64} {
			if got := j.Apply(d, 0, newRand(t, 1)); got != 0 {
				t.Errorf("%s: Apply(%v) = %v, want 0", name, d, got)
			}
		}
	}
	// And the real source does not panic either.
	if got := retry.FullJitter.Apply(0, 0, rand.New(rand.NewPCG(1, 2))); got != 0 {
		t.Errorf("FullJitter.Apply(0) = %v, want 0", got)
	}
}

func TestJitterExtremes(t *testing.T) {
	durations := []time.Duration{math.MinInt64, -1, 0, 1, 2, 3, time.Second, math.MaxInt64 / 3, math.MaxInt64 - 1, math.MaxInt64}
	for name, j := range allJitters(t) {
		r := newRand(t, 1)
		for _, d := range durations {
			for _, prev := range durations {
				for range 20 {
					if got := j.Apply(d, prev, r); got < 0 {
						t.Fatalf("%s: Apply(%v, %v) = %v < 0", name, d, prev, got)
					}
				}
			}
		}
	}
}

// badRand returns numbers outside [0, n).
type badRand int64

func (b badRand) Int64N(n int64) int64 {
	if b < 0 {
		return int64(b)
	}
	return n + int64(b)
}

func TestJitterBadRand(t *testing.T) {
	for name, j := range allJitters(t) {
		for _, r := range []retry.Rand{badRand(-1), badRand(0), badRand(math.MaxInt64 / 2), badRand(math.MinInt64)} {
			if got := j.Apply(10*time.Second, 10*time.Second, r); got < 0 || got > 30*time.Second {
				t.Errorf("%s with a bad Rand %d: Apply = %v", name, r, got)
			}
		}
	}
}

func TestJitterDeterministic(t *testing.T) {
	for name, j := range allJitters(t) {
		seq := func(seed uint64) []time.Duration {
			r := newRand(t, seed)
			out := make([]time.Duration, 100)
			var prev time.Duration
			for i := range out {
				prev = j.Apply(10*time.Second, prev, r)
				out[i] = prev
			}
			return out
		}
		a, b, c := seq(1), seq(1), seq(2)
		same := true
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: same seed, draw %d: %v != %v", name, i, a[i], b[i])
			}
			same = same && a[i] == c[i]
		}
		if same != (name == "none") {
			t.Errorf("%s: seeds 1 and 2 gave the same sequence: %v", name, same)
		}
	}
}

func TestParseJitter(t *testing.T) {
	for _, tt := range []struct {
		name string
		want retry.Jitter
	}{
		{"none", retry.NoJitter},
		{"full", retry.FullJitter},
		{"equal", retry.EqualJitter},
		{" Full ", retry.FullJitter},
		{"EQUAL", retry.EqualJitter},
	} {
		if got, err := retry.ParseJitter(tt.name); err != nil || got != tt.want {
			t.Errorf("ParseJitter(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	j := must[retry.Jitter](t)(retry.ParseJitter("decorrelated"))
	r := newRand(t, 1)
	for range 1000 {
		// DefaultBase 1s, DefaultMax 30s.
		if d := j.Apply(0, 0, r); d < time.Second || d > 3*time.Second {
			t.Fatalf("decorrelated first delay %v, want in [1s, 3s]", d)
		}
		if d := j.Apply(0, time.Hour, r); d < time.Second || d > 30*time.Second {
			t.Fatalf("decorrelated delay after 1h %v, want in [1s, 30s]", d)
		}
	}
}

func TestJitterBadInput(t *testing.T) {
	tests := []struct {
		name string
		make func() (retry.Jitter, error)
	}{
		{"decorrelated zero base", func() (retry.Jitter, error) { return retry.DecorrelatedJitter(0, time.Second) }},
		{"decorrelated negative base", func() (retry.Jitter, error) { return retry.DecorrelatedJitter(-time.Second, time.Second) }},
		{"decorrelated max below base", func() (retry.Jitter, error) { return retry.DecorrelatedJitter(time.Second, time.Millisecond) }},
		{"decorrelated zero max", func() (retry.Jitter, error) { return retry.DecorrelatedJitter(time.Second, 0) }},
		{"spread 0", func() (retry.Jitter, error) { return retry.SpreadJitter(0) }},
		{"spread -0.1", func() (retry.Jitter, error) { return retry.SpreadJitter(-0.1) }},
		{"spread 1.5", func() (retry.Jitter, error) { return retry.SpreadJitter(1.5) }},
		{"spread NaN", func() (retry.Jitter, error) { return retry.SpreadJitter(math.NaN()) }},
		{"spread +Inf", func() (retry.Jitter, error) { return retry.SpreadJitter(math.Inf(1)) }},
		{"parse empty", func() (retry.Jitter, error) { return retry.ParseJitter("") }},
		{"parse unknown", func() (retry.Jitter, error) { return retry.ParseJitter("bogus") }},
		{"parse spread", func() (retry.Jitter, error) { return retry.ParseJitter("spread") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := tt.make()
			if !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
			if j != nil {
				t.Errorf("Jitter = %v, want nil with an error", j)
			}
		})
	}
}
