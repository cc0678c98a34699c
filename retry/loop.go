package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
)

// ErrGaveUp is matched (errors.Is) by the error of a Loop that stopped
// reconnecting: the policy allowed no further attempt, or the last error was
// not worth retrying. The concrete error is a *GaveUpError.
var ErrGaveUp = errors.New("retry: gave up reconnecting")

// GaveUpError says why a Loop stopped: after how many attempts, and the
// error that ended the last connection or attempt (reachable with errors.Is
// and errors.As through Unwrap).
type GaveUpError struct {
	Attempts int   // attempts made since the last successful connection
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

// Loop is the reconnect schedule of one client: wait the policy's delay on
// the clock, try, and repeat until an attempt succeeds, the policy gives up
// or ctx ends. It publishes ReconnectScheduled before each wait,
// ReconnectAttempt before each try and GaveUp at the end of a failed
// outage; the caller publishes Reconnected once the new connection is ready
// (after its on-reconnect hook). A Loop holds no state between runs; run one
// outage at a time per client.
type Loop struct {
	// Policy decides the delays and when to give up. Nil means Default().
	Policy *Policy
	// Clock is what the loop waits on. Nil means the real clock.
	Clock clockwork.Clock
	// Bus receives the loop's events. Nil publishes nothing.
	Bus *events.Bus
	// ClientID names the client in events.
	ClientID string
	// Retryable tells errors worth another attempt from those that are not
	// (a refused credential, a bad URL). Nil retries every error.
	Retryable func(error) bool
}

// Attempt is one try: it dials and returns nil once the new connection is
// established. attempt counts from 1 since the last successful connection.
type Attempt func(ctx context.Context, attempt int) error

// Run runs one outage. cause is why the connection was lost, lostAt when
// (on the loop's clock), and first the number of the first attempt (1,
// unless the previous connection did not stay up long enough for the
// counter to reset; see Policy.StableAfter). It returns the number of the
// attempt that succeeded, or a *GaveUpError (errors.Is ErrGaveUp), or ctx's
// error when ctx ended first (no GaveUp event: the caller stopped it).
func (l *Loop) Run(ctx context.Context, cause error, lostAt time.Time, first int, try Attempt) (int, error) {
	if try == nil {
		return 0, fmt.Errorf("%w: nil Attempt", ErrInvalidPolicy)
	}
	clock := l.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	policy := l.Policy // a nil *Policy behaves as Default()
	attempt := max(first, 1)
	var prev time.Duration
	last := cause
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if l.Retryable != nil && last != nil && !l.Retryable(last) {
			return 0, l.giveUp(attempt-1, last, clock)
		}
		d, ok := policy.Next(attempt, prev, clock.Since(lostAt))
		if !ok {
			return 0, l.giveUp(attempt-1, last, clock)
		}
		events.Publish(l.Bus, events.ReconnectScheduled{ClientID: l.ClientID, Attempt: attempt, Delay: d, Cause: last, At: clock.Now()})
		if err := sleep(ctx, clock, d); err != nil {
			return 0, err
		}
		events.Publish(l.Bus, events.ReconnectAttempt{ClientID: l.ClientID, Attempt: attempt, At: clock.Now()})
		err := try(ctx, attempt)
		if err == nil {
			return attempt, nil
		}
		last, prev = err, d // a try that failed because ctx ended stops at the top of the loop
		attempt++
	}
}

func (l *Loop) giveUp(attempts int, last error, clock clockwork.Clock) error {
	events.Publish(l.Bus, events.GaveUp{ClientID: l.ClientID, Attempts: attempts, LastErr: last, At: clock.Now()})
	return &GaveUpError{Attempts: attempts, LastErr: last}
}

// sleep waits d on clock, or until ctx ends.
func sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
