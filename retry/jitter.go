package retry

import (
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Rand is the source of randomness a Jitter draws from. Int64N returns a
// number in [0, n) and is only ever called with n > 0. *math/rand/v2.Rand
// satisfies it.
type Rand interface {
	Int64N(n int64) int64
}

// Jitter randomises a backoff delay so that clients which lost their
// connections at the same instant do not all come back at the same instant.
// A Policy applies it after the backoff's cap, so a fleet sitting at the cap
// is spread too.
//
// d is the capped backoff delay, prev the delay actually used before the
// previous attempt (after jitter; 0 before the first attempt). Apply returns
// the delay to use, never negative.
type Jitter interface {
	Apply(d, prev time.Duration, r Rand) time.Duration
}

// The jitter strategies without parameters. They are comparable values.
var (
	// NoJitter returns d unchanged.
	NoJitter Jitter = noJitter{}
	// FullJitter returns a delay drawn uniformly from [0, d]: the widest
	// spread, and on average half the wait.
	FullJitter Jitter = fullJitter{}
	// EqualJitter returns d/2 plus a delay drawn uniformly from [0, d/2]:
	// it never waits less than half of d.
	EqualJitter Jitter = equalJitter{}
)

type noJitter struct{}

func (noJitter) Apply(d, _ time.Duration, _ Rand) time.Duration { return max(d, 0) }

type fullJitter struct{}

func (fullJitter) Apply(d, _ time.Duration, r Rand) time.Duration {
	return uniform(r, 0, max(d, 0))
}

type equalJitter struct{}

func (equalJitter) Apply(d, _ time.Duration, r Rand) time.Duration {
	d = max(d, 0)
	return uniform(r, d-d/2, d)
}

// DecorrelatedJitter returns the "decorrelated jitter" of the AWS
// Architecture Blog ("Exponential Backoff And Jitter"): each delay is drawn
// uniformly from [base, 3*prev], capped at max. It ignores the backoff's
// delay d and grows from its own previous value instead; the Policy's
// backoff still decides when to stop.
//
// A prev below base (in particular 0, before the first attempt) counts as
// base, as in the original where the first draw is from [base, 3*base];
// otherwise every client's first retry would land at exactly base.
//
// base must be > 0 and max >= base.
func DecorrelatedJitter(base, max time.Duration) (Jitter, error) {
	switch {
	case base <= 0:
		return nil, invalid("DecorrelatedJitter: base must be > 0, got %v", base)
	case max < base:
		return nil, invalid("DecorrelatedJitter: max (%v) must be >= base (%v)", max, base)
	}
	return decorrelated{base: base, max: max}, nil
}

type decorrelated struct{ base, max time.Duration }

func (j decorrelated) Apply(_, prev time.Duration, r Rand) time.Duration {
	prev = max(prev, j.base)
	hi := j.max
	if prev < j.max/3 {
		hi = 3 * prev
	}
	return uniform(r, j.base, max(hi, j.base))
}

// SpreadJitter returns a delay drawn uniformly from [d*(1-f), d*(1+f)]: d
// give or take the fraction f. The result may exceed the backoff's cap by up
// to that fraction. f must be in (0, 1].
func SpreadJitter(f float64) (Jitter, error) {
	if !(f > 0 && f <= 1) { // also refuses NaN
		return nil, invalid("SpreadJitter: fraction must be in (0, 1], got %v", f)
	}
	return spread(f), nil
}

type spread float64

func (f spread) Apply(d, _ time.Duration, r Rand) time.Duration {
	d = max(d, 0)
	delta := time.Duration(float64(d) * float64(f))
	if delta < 0 || delta > d { // float rounding near math.MaxInt64
		delta = d
	}
	hi := d + delta
	if delta > math.MaxInt64-d {
		hi = math.MaxInt64
	}
	return uniform(r, d-delta, hi)
}

// ParseJitter returns the jitter strategy named name: "none", "full",
// "equal", or "decorrelated" (with DefaultBase and DefaultMax). Case and
// surrounding spaces are ignored. Any other name is an error.
func ParseJitter(name string) (Jitter, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "none":
		return NoJitter, nil
	case "full":
		return FullJitter, nil
	case "equal":
		return EqualJitter, nil
	case "decorrelated":
		return decorrelated{base: DefaultBase, max: DefaultMax}, nil
	}
	return nil, invalid("unknown jitter %q (want none, full, equal or decorrelated)", name)
}

// uniform returns a duration drawn uniformly from [lo, hi], with 0 <= lo.
// It calls r.Int64N only with n > 0, and keeps the result in range even if r
// does not.
func uniform(r Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	n := int64(hi - lo)
	if n < math.MaxInt64 {
		n++ // include hi
	}
	v := r.Int64N(n)
	if v < 0 || v >= n {
		v = 0
	}
	return lo + time.Duration(v)
}

// globalRand draws from math/rand/v2's top-level functions, which are safe
// for concurrent use.
type globalRand struct{}

func (globalRand) Int64N(n int64) int64 { return rand.Int64N(n) }
