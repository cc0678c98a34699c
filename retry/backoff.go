package retry

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidPolicy is wrapped by every error of this package: a backoff,
// jitter or option given an out-of-range value. Test with errors.Is.
var ErrInvalidPolicy = errors.New("retry: invalid policy")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPolicy}, args...)...)
}

// The defaults, from the recipe this package generalises: 1s * 2^n, capped
// at 30 s, at most 5 attempts (so 1, 2, 4, 8, 16 s; the cap is not reached).
const (
	DefaultBase        = time.Second
	DefaultFactor      = 2.0
	DefaultMax         = 30 * time.Second
	DefaultMaxAttempts = 5
)

// Backoff maps an attempt number to the delay before that attempt. It is
// stateless, so one Backoff may be shared by any number of clients and
// tested as a table.
//
// Attempt 1 is the first retry after a connection was lost. Next returns the
// delay to wait before that attempt, or false to stop retrying. An attempt
// below 1 is treated as 1.
type Backoff interface {
	Next(attempt int) (time.Duration, bool)
}

// BackoffFunc adapts a function to Backoff. Its Next passes an attempt below
// 1 as 1; a nil BackoffFunc stops at once. Use Func to get one checked for
// nil.
type BackoffFunc func(attempt int) (time.Duration, bool)

// Next calls f(max(attempt, 1)).
func (f BackoffFunc) Next(attempt int) (time.Duration, bool) {
	if f == nil {
		return 0, false
	}
	return f(max(attempt, 1))
}

// Func returns fn as a Backoff. A nil fn is an error. fn may return a
// negative delay: a Policy treats it as 0.
func Func(fn func(attempt int) (time.Duration, bool)) (Backoff, error) {
	if fn == nil {
		return nil, invalid("Func(nil)")
	}
	return BackoffFunc(fn), nil
}

// Constant returns a Backoff that waits d before every attempt and never
// stops by itself (bound it with WithMaxAttempts or WithMaxElapsed).
// d must be > 0.
func Constant(d time.Duration) (Backoff, error) {
	if d <= 0 {
		return nil, invalid("Constant: delay must be > 0, got %v", d)
	}
	return constant(d), nil
}

type constant time.Duration

func (c constant) Next(int) (time.Duration, bool) { return time.Duration(c), true }

// Exponential returns a Backoff whose delay before attempt n is
// base * factor^(n-1), capped at max, and which never stops by itself (bound
// it with WithMaxAttempts or WithMaxElapsed). Factor 1 gives a constant
// delay. Any attempt number is safe: past the cap the delay stays at max; it
// never overflows.
//
// base must be > 0, factor a finite number >= 1, and max >= base: max is
// the cap, so 0 is an error, not "no cap".
func Exponential(base time.Duration, factor float64, max time.Duration) (Backoff, error) {
	switch {
	case base <= 0:
		return nil, invalid("Exponential: base must be > 0, got %v", base)
	case math.IsNaN(factor) || math.IsInf(factor, 0) || factor < 1:
		return nil, invalid("Exponential: factor must be a finite number >= 1, got %v", factor)
	case max <= 0:
		return nil, invalid("Exponential: max must be > 0 (it caps every delay; there is no \"no cap\"), got %v", max)
	case max < base:
		return nil, invalid("Exponential: max (%v) must be >= base (%v)", max, base)
	}
	return exponential{base: base, factor: factor, max: max}, nil
}

type exponential struct {
	base   time.Duration
	factor float64
	max    time.Duration
}

func (e exponential) Next(attempt int) (time.Duration, bool) {
	n := max(attempt, 1)
	// In float64, an overflowing power is +Inf, which fails the test below
	// like any value past the cap, so no product ever wraps around.
	d := math.Round(float64(e.base) * math.Pow(e.factor, float64(n-1)))
	if !(d < float64(e.max)) {
		return e.max, true
	}
	return time.Duration(d), true
}
