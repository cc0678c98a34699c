package retry

import (
	"errors"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// ErrGaveUp is matched (errors.Is) by the error a client ends with when
// its reconnect schedule gave up: the policy allowed no further attempt, or
// the last error was not worth retrying. The concrete error is a
// *GaveUpError.
var ErrGaveUp = errors.New("retry: gave up reconnecting")

// GaveUpError says why a schedule gave up: after how many attempts, and the
// error that ended the last connection or attempt (reachable with errors.Is
// and errors.As through Unwrap).
type GaveUpError struct {
	Attempts int   // attempts made in the outage
	LastErr  error // why the last connection or attempt ended
}

// Error implements error.
func (e *GaveUpError) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempt(s): %v", e.Attempts, e.LastErr)
}

// Unwrap returns LastErr.
func (e *GaveUpError) Unwrap() error { return e.LastErr }

// Is reports whether target is ErrGaveUp.
func (e *GaveUpError) Is(target error) bool { return target == ErrGaveUp }

// Reconnect is the reconnect plugin of a client (core.Reconnector): after
// the client's connection is lost it waits the Policy's delay on the
// client's clock, and dials again, until a connection works again or the
// Policy gives up. It holds the attempt counter and the outage's start, in
// one place, and publishes the reconnect events: Scheduled before each
// wait, Dialing before each attempt, Reconnected once a new connection
// opened, GaveUp at the end of a failed outage.
//
// An outage starts when a connection that worked is lost, and ends when a
// new one works: it opened (handshake done, on-reconnect hook returned
// nil) and stayed open for the Policy's StableAfter (0 by default: at
// once, as the recipe resets its counter in onopen). Connections that
// open but do not work (the hook fails, or they drop before StableAfter)
// do not end the outage: the attempt count and the elapsed time run on
// across them, so WithMaxAttempts and WithMaxElapsed bound the whole
// outage.
//
// A Reconnect value holds no per-client state: one may serve any number of
// clients.
type Reconnect struct {
	// Policy decides the delays and when to give up. Nil means Default().
	Policy *Policy
	// Retryable tells errors worth another attempt from those that are not
	// (a refused credential, a bad URL). Nil retries every error.
	// tether.Dial sets tether.Retryable.
	Retryable func(error) bool
}

var _ core.Reconnector = (*Reconnect)(nil)

// Start implements core.Reconnector.
func (r *Reconnect) Start(c core.ClientInfo) (core.Schedule, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil Reconnect", ErrInvalidPolicy)
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	return &schedule{policy: r.Policy, retryable: r.Retryable, info: c}, nil
}

// schedule is one client's state. Only the client's supervisor calls it,
// one call at a time.
type schedule struct {
	policy    *Policy
	retryable func(error) bool
	info      core.ClientInfo

	attempt  int           // attempts made in the current outage
	start    time.Time     // when the outage began; zero: none
	prev     time.Duration // the delay before the previous attempt
	open     bool          // a connection is open
	openedAt time.Time
	opened   bool // a connection has opened before: the next one is a reconnect
}

func (s *schedule) now() time.Time { return s.info.Clock.Now() }

func (s *schedule) Opened(h *core.Handle) {
	now := s.now()
	if s.opened && s.attempt > 0 {
		core.Emit(h, Reconnected{
			ClientID: s.info.ID, ConnID: h.Conn().ID(), Attempts: s.attempt,
			Downtime: now.Sub(s.start), At: now,
		})
	}
	s.opened, s.open, s.openedAt = true, true, now
	if s.policy.StableAfter() == 0 {
		s.reset() // it works: the recipe resets its counter in onopen
	}
}

func (s *schedule) reset() {
	s.attempt, s.start, s.prev = 0, time.Time{}, 0
}

func (s *schedule) Lost(cause error) (time.Duration, error) {
	now := s.now()
	if s.open {
		s.open = false
		if now.Sub(s.openedAt) >= s.policy.StableAfter() {
			s.reset() // it stayed up long enough: this is a new outage
		}
	}
	if s.start.IsZero() {
		s.start = now
	}
	if s.retryable != nil && cause != nil && !s.retryable(cause) {
		return 0, s.giveUp(cause, now)
	}
	next := s.attempt + 1
	d, ok := s.policy.Next(Outage{Attempt: next, Prev: s.prev, Elapsed: now.Sub(s.start), Cause: cause})
	if !ok {
		return 0, s.giveUp(cause, now)
	}
	s.prev = d
	events.Publish(s.info.Bus, Scheduled{ClientID: s.info.ID, Attempt: next, Delay: d, Cause: cause, At: now})
	return d, nil
}

func (s *schedule) Forced() {
	now := s.now()
	if s.open {
		s.open = false
		s.reset()
	}
	if s.start.IsZero() {
		s.start = now
	}
}

func (s *schedule) Dialing() int {
	s.attempt++
	events.Publish(s.info.Bus, Dialing{ClientID: s.info.ID, Attempt: s.attempt, At: s.now()})
	return s.attempt
}

func (s *schedule) giveUp(last error, now time.Time) error {
	events.Publish(s.info.Bus, GaveUp{ClientID: s.info.ID, Attempts: s.attempt, LastErr: last, At: now})
	return &GaveUpError{Attempts: s.attempt, LastErr: last}
}
