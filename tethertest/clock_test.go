package tethertest_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/tethertest"
)

// Step stops at every timer deadline on the way, so a callback that
// re-arms itself runs at each of its times, never late, and Step returns
// only once the last one has returned.
func TestStepStopsAtEveryTimer(t *testing.T) {
	ctx := testCtx(t)
	clock := tethertest.NewClock(t0)
	var mu sync.Mutex
	var fired []time.Duration
	var tick func()
	tick = func() {
		mu.Lock()
		fired = append(fired, clock.Since(t0))
		mu.Unlock()
		clock.AfterFunc(10*time.Second, tick)
	}
	clock.AfterFunc(10*time.Second, tick)
	if err := clock.Step(ctx, 35*time.Second, 1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := fired
	mu.Unlock()
	want := []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("fired at %v, want %v", got, want)
	}
	if now := clock.Since(t0); now != 35*time.Second {
		t.Fatalf("clock at %v, want 35s", now)
	}
}

// A plain FakeClock.Advance would jump over a timer armed by a callback
// of an earlier one; Step does not.
func TestStepWaitsForCallbacksToReturn(t *testing.T) {
	ctx := testCtx(t)
	clock := tethertest.NewClock(t0)
	release := make(chan struct{})
	returned := make(chan struct{})
	clock.AfterFunc(time.Second, func() {
		<-release
		close(returned)
	})
	stepped := make(chan error, 1)
	go func() { stepped <- clock.Step(ctx, time.Second, 1) }()
	// Step cannot return while the callback runs.
	short, cancel := context.WithCancel(ctx)
	cancel()
	for clock.Since(t0) < time.Second { // until Step has advanced
		runtime.Gosched()
	}
	if err := clock.Settle(short); err == nil || !strings.Contains(err.Error(), "callbacks running") {
		t.Fatalf("Settle while a callback runs = %v", err)
	}
	select {
	case err := <-stepped:
		t.Fatalf("Step returned %v while the callback ran", err)
	default:
	}
	close(release)
	if err := <-stepped; err != nil {
		t.Fatal(err)
	}
	<-returned
}

// Stop and Reset keep the clock's bookkeeping right: a stopped timer is
// not waited for, a reset one fires at its new time.
func TestStopAndReset(t *testing.T) {
	ctx := testCtx(t)
	clock := tethertest.NewClock(t0)
	fired := make(chan time.Duration, 4)
	a := clock.AfterFunc(time.Second, func() { fired <- clock.Since(t0) })
	if !a.Stop() {
		t.Fatal("Stop of an armed timer returned false")
	}
	b := clock.AfterFunc(time.Second, func() { fired <- clock.Since(t0) })
	b.Reset(5 * time.Second)
	ch := clock.NewTimer(3 * time.Second)
	received := make(chan time.Duration, 1)
	go func() { <-ch.Chan(); received <- clock.Since(t0) }() // Step settles only once this has received
	if err := clock.Step(ctx, 10*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-received:
		if got < 3*time.Second {
			t.Fatalf("channel timer received at %v, before 3s", got)
		}
	default:
		t.Fatal("Step returned before the channel timer was received")
	}
	if got := <-fired; got != 5*time.Second {
		t.Fatalf("reset timer fired at %v, want 5s", got)
	}
	select {
	case got := <-fired:
		t.Fatalf("a stopped timer fired at %v", got)
	default:
	}
}

// Settle reports what keeps it waiting when the code never comes to rest:
// here a transport nobody reads.
func TestSettleNamesWhatIsBusy(t *testing.T) {
	ctx := testCtx(t)
	clock := tethertest.NewClock(t0)
	srv, err := tethertest.NewServer(tether.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := srv.DialContext(ctx, "tcp", "x")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond) // wall time: how long to wait for a rest that never comes
	defer cancel()
	if err := clock.Settle(short); err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("Settle with an unread transport = %v", err)
	}
}
