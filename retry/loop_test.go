package retry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
)

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// loopSim runs a Loop on a fake clock and records its events.
type loopSim struct {
	clock *clockwork.FakeClock
	bus   *events.Bus
	mu    sync.Mutex
	log   []string
}

func newLoopSim(t *testing.T) *loopSim {
	s := &loopSim{clock: clockwork.NewFakeClockAt(t0), bus: events.NewBus()}
	t.Cleanup(s.bus.Close)
	add := func(f string, a ...any) { s.mu.Lock(); s.log = append(s.log, fmt.Sprintf(f, a...)); s.mu.Unlock() }
	sub := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := events.Subscribe(s.bus, func(e events.ReconnectScheduled) {
		add("scheduled #%d in %v @%v (%v)", e.Attempt, e.Delay, e.At.Sub(t0), e.Cause)
	})
	sub(err)
	_, err = events.Subscribe(s.bus, func(e events.ReconnectAttempt) { add("attempt #%d @%v", e.Attempt, e.At.Sub(t0)) })
	sub(err)
	_, err = events.Subscribe(s.bus, func(e events.GaveUp) { add("gave up after %d @%v (%v)", e.Attempts, e.At.Sub(t0), e.LastErr) })
	sub(err)
	return s
}

func (s *loopSim) events() []string {
	s.bus.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

var errDown = errors.New("connection refused")

// The recipe's schedule: attempts after 1, 2, 4, 8 and 16 s, then a give-up
// event carrying the last error.
func TestLoopDefaultScheduleThenGiveUp(t *testing.T) {
	s := newLoopSim(t)
	l := &retry.Loop{Clock: s.clock, Bus: s.bus, ClientID: "k"}
	var tries []time.Duration
	done := make(chan error, 1)
	go func() {
		_, err := l.Run(context.Background(), errors.New("lost"), s.clock.Now(), 1, func(context.Context, int) error {
			tries = append(tries, s.clock.Since(t0))
			return errDown
		})
		done <- err
	}()
	for _, d := range []time.Duration{1, 2, 4, 8, 16} {
		if err := s.clock.BlockUntilContext(ctx(t), 1); err != nil {
			t.Fatal(err)
		}
		s.clock.Advance(d*time.Second - time.Nanosecond)
		select {
		case <-done:
			t.Fatal("returned early")
		default:
		}
		s.clock.Advance(time.Nanosecond)
	}
	err := <-done
	var gu *retry.GaveUpError
	if !errors.As(err, &gu) || gu.Attempts != 5 || !errors.Is(err, retry.ErrGaveUp) || !errors.Is(err, errDown) {
		t.Fatalf("Run = %v", err)
	}
	want := []time.Duration{1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second}
	if !slices.Equal(tries, want) {
		t.Fatalf("attempts at %v, want %v", tries, want)
	}
	got := s.events()
	wantEv := []string{
		"scheduled #1 in 1s @0s (lost)", "attempt #1 @1s",
		"scheduled #2 in 2s @1s (connection refused)", "attempt #2 @3s",
		"scheduled #3 in 4s @3s (connection refused)", "attempt #3 @7s",
		"scheduled #4 in 8s @7s (connection refused)", "attempt #4 @15s",
		"scheduled #5 in 16s @15s (connection refused)", "attempt #5 @31s",
		"gave up after 5 @31s (connection refused)",
	}
	if !slices.Equal(got, wantEv) {
		t.Fatalf("events:\n%q\nwant:\n%q", got, wantEv)
	}
}

// Success on the third attempt returns its number; a run that starts at
// attempt 3 (the counter was not reset) waits 4 s first.
func TestLoopSucceedsAndCarriesTheCounter(t *testing.T) {
	s := newLoopSim(t)
	l := &retry.Loop{Clock: s.clock, Bus: s.bus}
	for _, tc := range []struct{ first, failures, want int }{{1, 2, 3}, {3, 0, 3}, {4, 1, 5}} {
		done := make(chan int, 1)
		start := s.clock.Now()
		go func() {
			n, err := l.Run(context.Background(), errDown, s.clock.Now(), tc.first, func(_ context.Context, a int) error {
				if a < tc.first+tc.failures {
					return errDown
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			done <- n
		}()
		for a := tc.first; a <= tc.want; a++ { // one wait per attempt, of exactly the policy's delay
			if err := s.clock.BlockUntilContext(ctx(t), 1); err != nil {
				t.Fatal(err)
			}
			s.clock.Advance(time.Second << (a - 1))
		}
		n := <-done
		if n != tc.want {
			t.Fatalf("first %d: succeeded at attempt %d, want %d", tc.first, n, tc.want)
		}
		var total time.Duration
		for a := tc.first; a <= tc.want; a++ {
			total += time.Second << (a - 1)
		}
		if got := s.clock.Since(start); got != total {
			t.Fatalf("first %d: took %v of simulated time, want %v", tc.first, got, total)
		}
	}
}

// A cause the classifier refuses gives up at once, without an attempt.
func TestLoopGivesUpOnAPermanentError(t *testing.T) {
	s := newLoopSim(t)
	denied := errors.New("401")
	l := &retry.Loop{Clock: s.clock, Bus: s.bus, Retryable: func(err error) bool { return !errors.Is(err, denied) }}
	_, err := l.Run(context.Background(), denied, s.clock.Now(), 1, func(context.Context, int) error {
		t.Fatal("attempted")
		return nil
	})
	if !errors.Is(err, retry.ErrGaveUp) || !errors.Is(err, denied) {
		t.Fatalf("Run = %v", err)
	}
	if got := s.events(); !slices.Equal(got, []string{"gave up after 0 @0s (401)"}) {
		t.Fatalf("events %q", got)
	}
	// An attempt that fails with a permanent error stops the loop too.
	done := make(chan error, 1)
	go func() {
		_, err := l.Run(context.Background(), errDown, s.clock.Now(), 1, func(context.Context, int) error { return denied })
		done <- err
	}()
	if err := s.clock.BlockUntilContext(ctx(t), 1); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(time.Second)
	err = <-done
	var gu *retry.GaveUpError
	if !errors.Is(err, denied) || !errors.As(err, &gu) || gu.Attempts != 1 { // one attempt made, refused for good
		t.Fatalf("Run = %v", err)
	}
	if got := s.events(); len(got) != 4 || got[3] != "gave up after 1 @1s (401)" {
		t.Fatalf("events %q", got)
	}
}

// Cancelling ctx during a wait returns ctx's error and publishes no GaveUp:
// the caller stopped the loop (a user's Close).
func TestLoopStopsWithItsContext(t *testing.T) {
	s := newLoopSim(t)
	l := &retry.Loop{Clock: s.clock, Bus: s.bus}
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.Run(c, errDown, s.clock.Now(), 1, func(context.Context, int) error { return errDown })
		done <- err
	}()
	if err := s.clock.BlockUntilContext(ctx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if got := s.events(); !slices.Equal(got, []string{"scheduled #1 in 1s @0s (connection refused)"}) {
		t.Fatalf("events %q", got)
	}
	if _, err := l.Run(context.Background(), errDown, s.clock.Now(), 1, nil); !errors.Is(err, retry.ErrInvalidPolicy) {
		t.Fatalf("nil Attempt: %v", err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second) // wall time: hang guard only
	t.Cleanup(cancel)
	return c
}

// recordingJitter passes delays through and records the previous delay the
// loop hands it.
type recordingJitter struct {
	mu   sync.Mutex
	prev []time.Duration
}

func (j *recordingJitter) Apply(d, prev time.Duration, _ retry.Rand) time.Duration {
	j.mu.Lock()
	j.prev = append(j.prev, prev)
	j.mu.Unlock()
	return d
}

// The loop hands the policy the previous delay (decorrelated jitter needs
// it) and the time elapsed since the loss (WithMaxElapsed needs it): with
// at most 5 s of outage, attempts come at 1 s and 3 s, and the third (due
// at 7 s) is not made.
func TestLoopPassesPrevAndElapsed(t *testing.T) {
	s := newLoopSim(t)
	j := &recordingJitter{}
	p, err := retry.New(retry.WithJitter(j), retry.WithMaxElapsed(5*time.Second), retry.WithMaxAttempts(retry.Unlimited))
	if err != nil {
		t.Fatal(err)
	}
	l := &retry.Loop{Policy: p, Clock: s.clock, Bus: s.bus}
	done := make(chan error, 1)
	go func() {
		_, err := l.Run(context.Background(), errDown, s.clock.Now(), 1, func(context.Context, int) error { return errDown })
		done <- err
	}()
	for _, d := range []time.Duration{time.Second, 2 * time.Second} {
		if err := s.clock.BlockUntilContext(ctx(t), 1); err != nil {
			t.Fatal(err)
		}
		s.clock.Advance(d)
	}
	err = <-done
	var gu *retry.GaveUpError
	if !errors.As(err, &gu) || gu.Attempts != 2 {
		t.Fatalf("Run = %v", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if want := []time.Duration{0, time.Second, 2 * time.Second}; !slices.Equal(j.prev, want) {
		t.Fatalf("prev delays %v, want %v", j.prev, want)
	}
	if got := s.events(); got[len(got)-1] != "gave up after 2 @3s (connection refused)" {
		t.Fatalf("events %q", got)
	}
}
