package tethertest_test

// Regression tests from a review of tethertest: each comment names the bug
// the test guards against (fixed since).

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
	"github.com/tetherws/tether/tethertest"
)

// R4: the usual select-with-timeout idiom. The other case wins, the
// After timer is abandoned; once the clock passes it, its value sits in the
// channel forever and Settle/Step never return.
func TestRegressAbandonedAfterHangsSettle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // wall time: hang guard
	defer cancel()
	clock := tethertest.NewClock(t0)
	reply := make(chan string, 1)
	reply <- "fast answer"
	select {
	case <-reply:
	case <-clock.After(5 * time.Second):
	}
	if err := clock.Step(ctx, 10*time.Second, 0); err != nil {
		t.Fatalf("Step after an abandoned After: %v", err)
	}
}

// R5: a fired channel timer received a moment later: nothing wakes
// Settle, which waits for its context although all is at rest.
func TestRegressSettleNotWokenByReceive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // wall time: hang guard
	defer cancel()
	clock := tethertest.NewClock(t0)
	tm := clock.NewTimer(time.Second)
	clock.Advance(time.Second) // fired; the goroutine that owns it is busy elsewhere for a moment
	go func() {
		time.Sleep(20 * time.Millisecond) // wall time: a goroutine doing other work before it receives
		<-tm.Chan()
	}()
	began := time.Now()
	err := clock.Settle(ctx)
	if err != nil {
		t.Fatalf("Settle: %v after %v (the timer was received after 20ms)", err, time.Since(began))
	}
}

// Sleep and NewTicker are followed: Step stops at each tick and at the
// sleeper's deadline, and waits until a tick is received before moving on.
func TestRegressStepStopsAtSleepAndTicker(t *testing.T) {
	ctx := testCtx(t)
	clock := tethertest.NewClock(t0)
	woke := make(chan time.Duration, 1)
	go func() { clock.Sleep(time.Second); woke <- clock.Since(t0) }()
	tk := clock.NewTicker(time.Second)
	var mu sync.Mutex
	var ticks []time.Duration
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case at := <-tk.Chan(): // the tick's own time: the clock may move on once it is received
				mu.Lock()
				ticks = append(ticks, at.Sub(t0))
				mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
	if err := clock.BlockUntilContext(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := clock.Step(ctx, time.Second, 0); err != nil {
		t.Fatal(err)
	}
	if at := <-woke; at != time.Second { // the clock stays at 1s until the next Step
		t.Errorf("Sleep(1s) woke at %v", at)
	}
	if err := clock.Step(ctx, 4*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	tk.Stop()
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(ticks) != 5 || ticks[0] != time.Second || ticks[4] != 5*time.Second {
		t.Errorf("ticks at %v, want 1s ... 5s", ticks)
	}
}

// R12: Settle waits for watched buses with bus.Wait, which takes no
// context: a subscriber that blocks (a full channel in a test) makes
// Settle and Step ignore their ctx and hang.
func TestRegressSettleIgnoresCtxOnBlockedSubscriber(t *testing.T) {
	clock := tethertest.NewClock(t0)
	bus := events.NewBus()
	defer bus.Close()
	clock.Watch(bus)
	release := make(chan struct{})
	unsub, err := events.Subscribe(bus, func(retry.GaveUp) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	events.Publish(bus, retry.GaveUp{ClientID: "k", At: t0})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // wall time: Settle must give up by then
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- clock.Settle(ctx) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second): // wall time: 20x the ctx
		close(release)
		<-done
		t.Fatal("Settle still running 2s after its 100ms ctx ended (blocked in bus.Wait)")
	}
	close(release)
}
