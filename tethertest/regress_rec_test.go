package tethertest_test

// Regression tests from a review of tethertest: each comment names the bug
// the test guards against (fixed since).

import (
	"context"
	"testing"
	"time"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
	"github.com/tetherws/tether/tethertest"
)

// R9: WaitFor scans from the first event ever recorded, ignoring Take; the
// docs' pattern "wait for reconnect.scheduled #n, then step" returns at
// once in a second outage with the first outage's event.
func TestRegressWaitForIgnoresTake(t *testing.T) {
	ctx := testCtx(t)
	bus := events.NewBus()
	defer bus.Close()
	rec, err := tethertest.NewRecorder(bus, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	events.Publish(bus, retry.Scheduled{ClientID: "k", Attempt: 1, Delay: time.Second, At: t0})
	bus.Wait(context.Background())
	rec.Take()                                                      // the first outage is over and consumed
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond) // wall time: nothing will come
	defer cancel()
	e, err := rec.WaitFor(short, func(e events.Event) bool {
		s, ok := e.(retry.Scheduled)
		return ok && s.Attempt == 1
	})
	if err == nil {
		t.Fatalf("WaitFor for the second outage's #1 returned the first outage's event at once: %v", tethertest.Describe(e, t0))
	}
}

// R10: one wake-up slot for all waiters: two concurrent waiters, one
// event; the wrong waiter can swallow the signal and the right one waits
// for its context although its event is recorded.
func TestRegressConcurrentWaitersLoseWakeup(t *testing.T) {
	ctx := testCtx(t)
	lost := 0
	for range 5 {
		bus := events.NewBus()
		rec, err := tethertest.NewRecorder(bus, t0)
		if err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond) // wall time: the event is published at once; this bounds the other waiter
		started := make(chan struct{}, 2)
		errs := make(chan error, 2)
		for _, topic := range []string{retry.GaveUp{}.Topic(), retry.Reconnected{}.Topic()} {
			go func() {
				started <- struct{}{}
				_, err := rec.WaitFor(short, func(e events.Event) bool { return e.Topic() == topic })
				errs <- err
			}()
		}
		<-started
		<-started
		time.Sleep(5 * time.Millisecond) // wall time: let both park
		events.Publish(bus, retry.Reconnected{ClientID: "k", At: t0})
		bus.Wait(context.Background())
		var reconnErr error
		// the GaveUp waiter ends by its ctx; the Reconnected one must not
		e1, e2 := <-errs, <-errs
		if e1 != nil && e2 != nil {
			reconnErr = e1
		}
		if reconnErr != nil {
			lost++
		}
		cancel()
		rec.Close()
		bus.Close()
	}
	if lost > 0 {
		t.Fatalf("%d of 5: the Reconnected waiter missed its recorded event", lost)
	}
}
