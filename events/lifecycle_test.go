package events_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tetherws/tether/events"
)

// Issue 13, item 1(b): a subscriber that starts a goroutine which
// unsubscribes (its own subscription or another), and waits for it, hung
// for ever (unsubscribe waited for the running call). Unsubscribe now
// returns at once from any goroutine: the handler returns, and the
// subscription is gone.
func TestUnsubscribeFromAGoroutineTheHandlerWaitsFor(t *testing.T) {
	for _, which := range []string{"itself", "another"} {
		t.Run(which, func(t *testing.T) {
			b := events.NewBus()
			defer b.Close()
			var self, other func()
			var selfCalls, otherCalls int
			returned := make(chan struct{}, 1)
			self = mustSub(t, b, func(events.Connected) {
				selfCalls++
				done := make(chan struct{})
				go func() {
					defer close(done)
					if which == "itself" {
						self()
					} else {
						other()
					}
				}()
				<-done
				returned <- struct{}{}
			})
			other = mustSub(t, b, func(events.Connected) { otherCalls++ })
			events.Publish(b, events.Connected{})
			select {
			case <-returned:
			case <-testCtx(t).Done():
				t.Fatal("the handler never returned: unsubscribe waited for it")
			}
			wait(t, b)
			events.Publish(b, events.Connected{})
			wait(t, b)
			wantSelf, wantOther := 2, 0
			if which == "itself" {
				wantSelf, wantOther = 1, 2
			}
			if selfCalls != wantSelf || otherCalls != wantOther {
				t.Fatalf("calls: self %d, other %d; want %d and %d", selfCalls, otherCalls, wantSelf, wantOther)
			}
		})
	}
}

// Once unsubscribe has returned, no call of the handler starts: not for
// the events published afterwards, nor for those already queued. A call
// already running when it was called finishes. Other subscribers of the
// same type go on receiving everything.
func TestUnsubscribeStopsLaterAndQueuedEvents(t *testing.T) {
	for _, from := range []string{"another goroutine", "the handler"} {
		t.Run(from, func(t *testing.T) {
			b := events.NewBus()
			defer b.Close()
			var mu sync.Mutex
			var log []string
			add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
			entered, release := make(chan struct{}), make(chan struct{})
			var unsub func()
			unsub = mustSub(t, b, func(e RateLimited) {
				add(fmt.Sprintf("h:%d", e.Dropped))
				if e.Dropped == 1 {
					if from == "the handler" {
						unsub()
					}
					close(entered)
					<-release
					add("h:1 finished")
				}
			})
			var others []int
			mustSub(t, b, func(e RateLimited) { others = append(others, e.Dropped) })
			for i := 1; i <= 3; i++ {
				events.Publish(b, RateLimited{Dropped: i})
			}
			<-entered // event 1 is running; 2 and 3 are queued
			if from == "another goroutine" {
				returned := make(chan struct{})
				go func() { unsub(); close(returned) }()
				select {
				case <-returned: // while the call it removes still runs
				case <-testCtx(t).Done():
					t.Fatal("unsubscribe waited for the running call")
				}
			}
			add("unsubscribed")
			events.Publish(b, RateLimited{Dropped: 4})
			close(release)
			wait(t, b)
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"h:1", "unsubscribed", "h:1 finished"}; !slices.Equal(log, want) {
				t.Fatalf("handler log %q, want %q", log, want)
			}
			if want := []int{1, 2, 3, 4}; !slices.Equal(others, want) {
				t.Fatalf("the other subscriber got %v, want %v", others, want)
			}
		})
	}
}

// Wait returns once every event published before it was delivered and
// its handlers returned; what is published meanwhile does not hold it up.
// If ctx ends first, Wait returns ctx's error.
func TestWaitWaitsForHandlersToReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := events.NewBus()
		defer b.Close()
		release := map[int]chan struct{}{1: make(chan struct{}), 2: make(chan struct{})}
		var returned []int
		mustSub(t, b, func(e RateLimited) {
			<-release[e.Dropped]
			returned = append(returned, e.Dropped)
		})
		events.Publish(b, RateLimited{Dropped: 1})
		waited := make(chan error, 1)
		go func() { waited <- b.Wait(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("Wait returned %v while the handler ran", err)
		default:
		}
		events.Publish(b, RateLimited{Dropped: 2}) // after Wait began: not waited for

		// A Wait whose ctx ends gives up with ctx's error.
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := make(chan error, 1)
		go func() { cancelled <- b.Wait(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-cancelled; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait with a cancelled ctx = %v", err)
		}

		close(release[1])
		if err := <-waited; err != nil {
			t.Fatalf("Wait = %v", err)
		}
		if !slices.Equal(returned, []int{1}) { // event 2's handler still blocks
			t.Fatalf("handlers returned for %v when Wait returned, want [1]", returned)
		}
		close(release[2])
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// Wait called from a handler would wait for that handler's own return: it
// returns ctx's error when ctx ends, never nil, and the bus carries on.
func TestWaitFromAHandlerReturnsCtxError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := events.NewBus()
		defer b.Close()
		var err error
		var took time.Duration
		mustSub(t, b, func(events.Connected) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second) // the bubble's clock
			defer cancel()
			start := time.Now()
			err = b.Wait(ctx)
			took = time.Since(start)
		})
		n := 0
		mustSub(t, b, func(RateLimited) { n++ })
		events.Publish(b, events.Connected{})
		events.Publish(b, RateLimited{})
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || took != time.Second {
			t.Fatalf("Wait in a handler = %v after %v, want the deadline after 1s", err, took)
		}
		if n != 1 {
			t.Fatal("the event after the waiting handler was not delivered")
		}
	})
}

// Close returns at once, even while a handler runs; events already queued
// are still delivered; later ones are dropped, without allocating; Enabled
// reports false; Subscribe and SubscribeAll return ErrBusClosed.
func TestCloseReturnsAtOnceAndDropsLaterEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := events.NewBus()
		release := make(chan struct{})
		var got []int
		mustSub(t, b, func(e RateLimited) {
			if e.Dropped == 1 {
				<-release
			}
			got = append(got, e.Dropped)
		})
		events.Publish(b, RateLimited{Dropped: 1})
		events.Publish(b, RateLimited{Dropped: 2})
		synctest.Wait() // the handler is blocked on event 1
		b.Close()       // returns although a handler runs
		b.Close()       // idempotent
		events.Publish(b, RateLimited{Dropped: 3})
		if a := testing.AllocsPerRun(100, func() { events.Publish(b, RateLimited{Dropped: 4}) }); a != 0 {
			t.Errorf("%v allocations per publish on a closed bus", a)
		}
		if events.Enabled[RateLimited](b) {
			t.Error("Enabled on a closed bus: publishers would build payloads for nothing")
		}
		if _, err := events.Subscribe(b, func(RateLimited) {}); !errors.Is(err, events.ErrBusClosed) {
			t.Errorf("Subscribe after Close: %v", err)
		}
		if _, err := events.SubscribeAll(b, func(events.Event) {}); !errors.Is(err, events.ErrBusClosed) {
			t.Errorf("SubscribeAll after Close: %v", err)
		}
		close(release)
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("delivered %v, want [1 2]: what was queued before Close, nothing after", got)
		}
	})
}
