package retry

import (
	"errors"
	"sync"
	"time"
)

// Unlimited, given to WithMaxAttempts, removes the limit on attempts.
const Unlimited = -1

// Policy decides, for each reconnect attempt, how long to wait first or
// whether to give up: a Backoff, a Jitter and limits. Build one with New.
//
// A Policy is immutable and holds no per-connection state, so one value may
// be shared by any number of clients and its methods called concurrently.
// The zero Policy and a nil *Policy behave as Default().
type Policy struct {
	backoff     Backoff
	jitter      Jitter
	maxAttempts int
	maxElapsed  time.Duration
	stableAfter time.Duration
	rand        Rand
	hint        func(cause error) (time.Duration, bool)
}

var defaultPolicy = &Policy{
	backoff:     exponential{base: DefaultBase, factor: DefaultFactor, max: DefaultMax},
	jitter:      NoJitter,
	maxAttempts: DefaultMaxAttempts,
	rand:        globalRand{},
}

// Default returns the default policy: Exponential(DefaultBase,
// DefaultFactor, DefaultMax), NoJitter, DefaultMaxAttempts attempts, no
// elapsed-time limit, StableAfter 0. That is 1, 2, 4, 8, 16 s, then give up.
// The value is shared; it cannot be changed.
func Default() *Policy { return defaultPolicy }

// Option configures a Policy built by New.
type Option func(*Policy) error

// New returns a Policy: the defaults (see Default) changed by opts, applied
// in order. Any invalid option makes it return an error matching
// ErrInvalidPolicy, which lists every problem found.
func New(opts ...Option) (*Policy, error) {
	p := *defaultPolicy
	var errs []error
	for _, o := range opts {
		if o == nil {
			errs = append(errs, invalid("nil Option"))
			continue
		}
		if err := o(&p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &p, nil
}

// WithBackoff sets the backoff. Default: Exponential(DefaultBase,
// DefaultFactor, DefaultMax). A nil Backoff is an error.
func WithBackoff(b Backoff) Option {
	return func(p *Policy) error {
		if f, ok := b.(BackoffFunc); b == nil || ok && f == nil {
			return invalid("WithBackoff(nil)")
		}
		p.backoff = b
		return nil
	}
}

// WithJitter sets the jitter strategy, applied to each delay after the
// backoff's cap. Default: NoJitter. A nil Jitter is an error.
func WithJitter(j Jitter) Option {
	return func(p *Policy) error {
		if j == nil {
			return invalid("WithJitter(nil)")
		}
		p.jitter = j
		return nil
	}
}

// WithMaxAttempts sets how many attempts follow the loss of a connection
// before the policy gives up: n >= 1, or Unlimited. Default:
// DefaultMaxAttempts.
func WithMaxAttempts(n int) Option {
	return func(p *Policy) error {
		if n < 1 && n != Unlimited {
			return invalid("WithMaxAttempts: want >= 1 or Unlimited (-1), got %d", n)
		}
		p.maxAttempts = n
		return nil
	}
}

// WithMaxElapsed bounds the length of an outage: the policy gives up when
// the time elapsed since the connection was lost plus the next delay would
// exceed d. 0 means no bound, the default; a negative d is an error.
func WithMaxElapsed(d time.Duration) Option {
	return func(p *Policy) error {
		if d < 0 {
			return invalid("WithMaxElapsed: want >= 0 (0 = no limit), got %v", d)
		}
		p.maxElapsed = d
		return nil
	}
}

// WithStableAfter sets how long a new connection must stay open before it
// ends the outage: only then does the reconnect schedule (Reconnect) reset
// its attempt counter and the outage's start. Default 0: reset as soon as a
// connection opens, as the recipe does. A connection that opens and drops at
// once then retries at the first delay again, forever; a few seconds here
// makes such a flapping server see the backoff grow, and lets
// WithMaxAttempts and WithMaxElapsed end the outage. Negative is an error.
func WithStableAfter(d time.Duration) Option {
	return func(p *Policy) error {
		if d < 0 {
			return invalid("WithStableAfter: want >= 0, got %v", d)
		}
		p.stableAfter = d
		return nil
	}
}

// WithRand sets the source the jitter draws from, for example a seeded
// *math/rand/v2.Rand in tests. The Policy guards it with a mutex, so r need
// not be safe for concurrent use, and calls of Next on a shared Policy are
// serialised on it while they draw. Default: math/rand/v2's top-level
// functions, safe for concurrent use without a lock of the Policy's. A nil r
// is an error.
func WithRand(r Rand) Option {
	return func(p *Policy) error {
		if r == nil {
			return invalid("WithRand(nil)")
		}
		p.rand = &lockedRand{r: r}
		return nil
	}
}

// WithHint lets the error that ended the last connection or attempt set
// the next delay: when hint(cause) returns true, its delay replaces the
// backoff's, without jitter, still bounded by WithMaxAttempts and
// WithMaxElapsed (and never negative), and by nothing else: a server that
// says Retry-After: 86400 parks the client for a day unless WithMaxElapsed
// is set. RetryAfter is a ready hint: a
// server's Retry-After header. Default: none. A nil hint is an error.
func WithHint(hint func(cause error) (time.Duration, bool)) Option {
	return func(p *Policy) error {
		if hint == nil {
			return invalid("WithHint(nil)")
		}
		p.hint = hint
		return nil
	}
}

type lockedRand struct {
	mu sync.Mutex
	r  Rand
}

func (l *lockedRand) Int64N(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}

// Outage is what a Policy is told when asked for the next delay.
type Outage struct {
	// Attempt is the number of the attempt to schedule: 1 for the first
	// after a connection was lost (below 1 counts as 1).
	Attempt int
	// Prev is the delay returned for the previous attempt (0 before the
	// first).
	Prev time.Duration
	// Elapsed is the time since the outage began.
	Elapsed time.Duration
	// Cause is why the connection, or the previous attempt, ended: the
	// policy's hint (WithHint) may read a server's advice from it.
	Cause error
}

// Next returns the delay to wait before the attempt o describes, or false
// to give up. The reconnect plugin (Reconnect) carries the attempt number,
// the previous delay and the elapsed time; Next holds no state.
//
// It gives up when the attempt exceeds MaxAttempts, when the backoff says
// stop, or when the elapsed time plus the delay would exceed the
// WithMaxElapsed limit. Otherwise the delay is the hint's if it has one for
// o.Cause, else the backoff's, then jittered; never negative.
func (p *Policy) Next(o Outage) (time.Duration, bool) {
	p = p.orDefault()
	attempt := max(o.Attempt, 1)
	if p.maxAttempts != Unlimited && attempt > p.maxAttempts {
		return 0, false
	}
	var d time.Duration
	hinted := false
	if p.hint != nil && o.Cause != nil {
		d, hinted = p.hint(o.Cause)
		d = max(d, 0)
	}
	if !hinted {
		var ok bool
		d, ok = p.backoff.Next(attempt)
		if !ok {
			return 0, false
		}
		d = max(p.jitter.Apply(max(d, 0), max(o.Prev, 0), p.rand), 0)
	}
	if p.maxElapsed > 0 && d > p.maxElapsed-max(o.Elapsed, 0) {
		return 0, false
	}
	return d, true
}

// MaxAttempts returns the number of attempts after which the policy gives
// up, or Unlimited.
func (p *Policy) MaxAttempts() int { return p.orDefault().maxAttempts }

// StableAfter returns how long a connection must stay open before the
// attempt counter is reset (0: at once).
func (p *Policy) StableAfter() time.Duration { return p.orDefault().stableAfter }

func (p *Policy) orDefault() *Policy {
	if p == nil || p.backoff == nil {
		return defaultPolicy
	}
	return p
}
