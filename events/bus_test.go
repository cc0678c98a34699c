package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
)

// Events reach subscribers in publish order, across types: the core's and
// a third party's, to typed subscribers and to a subscriber of every event.
func TestOrderAcrossTypes(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var got, all []string
	record := func(s string) { got = append(got, s) } // only the dispatcher goroutine appends
	mustSub(t, b, func(e events.Connected) { record("connected:" + e.ConnID) })
	mustSub(t, b, func(e events.MessageIn) { record("in:" + string(e.Payload)) })
	mustSub(t, b, func(e RateLimited) { record(fmt.Sprintf("limited:%s:%d", e.ConnID, e.Dropped)) })
	mustSub(t, b, func(e events.Disconnected) { record("disconnected:" + e.ConnID) })
	mustSubAll(t, b, func(e events.Event) { all = append(all, e.Topic()+":"+e.Source()) })

	var want, wantAll []string
	for i := range 200 {
		id := string(rune('a' + i%26))
		events.Publish(b, events.Connected{ConnID: id})
		events.Publish(b, events.MessageIn{ConnID: id, Payload: []byte(id)})
		events.Publish(b, RateLimited{ConnID: id, Dropped: i})
		events.Publish(b, events.Disconnected{ConnID: id})
		want = append(want, "connected:"+id, "in:"+id, fmt.Sprintf("limited:%s:%d", id, i), "disconnected:"+id)
		wantAll = append(wantAll, "tether.connected:"+id, "tether.message.in:"+id, "ratelimit.limited:"+id, "tether.disconnected:"+id)
	}
	wait(t, b)
	if !slices.Equal(got, want) {
		t.Fatalf("typed delivery out of order:\n got %v\nwant %v", got[:min(8, len(got))], want[:8])
	}
	if !slices.Equal(all, wantAll) {
		t.Fatalf("SubscribeAll delivery out of order:\n got %v\nwant %v", all[:min(8, len(all))], wantAll[:8])
	}
}

// A handler that publishes, subscribes and unsubscribes does not deadlock
// (EventBus alone would: it holds its lock while it calls handlers), and
// the events it publishes are delivered after the current one. An event
// queued before a subscription was made reaches it too (the late Error
// subscriber).
func TestHandlerPublishesSubscribesAndUnsubscribes(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var mu sync.Mutex
	var got []string
	add := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
	var unsubLate func()
	var unsubSelf func()
	unsubSelf = mustSub(t, b, func(e events.Connected) {
		add("connected:" + e.ConnID)
		events.Publish(b, events.Error{ConnID: e.ConnID, Err: errors.New("from handler")})
		var err error
		unsubLate, err = events.Subscribe(b, func(e events.Error) { add("late:" + e.Err.Error()) })
		if err != nil {
			t.Error(err)
		}
		if _, err := events.SubscribeAll(b, func(e events.Event) {
			if e.Topic() == "ratelimit.limited" {
				add("all:" + e.Topic())
			}
		}); err != nil {
			t.Error(err)
		}
		events.Publish(b, RateLimited{ConnID: e.ConnID}) // it has a subscriber now
		unsubSelf()                                      // its own subscription, from its own call
	})
	mustSub(t, b, func(e events.Error) { add("error:" + e.Err.Error()) })
	events.Publish(b, events.Connected{ConnID: "x"})
	wait(t, b)                                       // Connected delivered; the handler had published by then
	wait(t, b)                                       // and what it published delivered
	events.Publish(b, events.Connected{ConnID: "y"}) // the handler unsubscribed itself
	unsubLate()
	events.Publish(b, events.Error{Err: errors.New("after")})
	wait(t, b)
	want := "connected:x,error:from handler,late:from handler,all:ratelimit.limited,error:after"
	mu.Lock()
	defer mu.Unlock()
	if g := strings.Join(got, ","); g != want {
		t.Fatalf("got  %s\nwant %s", g, want)
	}
}

// Unsubscribe removes exactly its own subscription, even when several
// subscriptions share one function (EventBus compares function pointers and
// would remove the wrong one). Enabled follows the subscriptions.
func TestUnsubscribeIsPerSubscription(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	counts := make([]int, 3)
	var unsubs []func()
	for i := range counts {
		u := mustSub(t, b, func(events.Connected) { counts[i]++ })
		unsubs = append(unsubs, u)
	}
	unsubs[1]()
	unsubs[1]() // idempotent
	events.Publish(b, events.Connected{})
	wait(t, b)
	if counts[0] != 1 || counts[1] != 0 || counts[2] != 1 {
		t.Fatalf("counts %v, want [1 0 1]", counts)
	}
	if !events.Enabled[events.Connected](b) {
		t.Fatal("type reported disabled with two subscribers left")
	}
	unsubs[0]()
	unsubs[2]()
	if events.Enabled[events.Connected](b) {
		t.Fatal("type reported enabled with no subscriber")
	}
}

// A panicking handler is logged with the event's topic; the other handlers
// and later events still run.
func TestHandlerPanicIsContained(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	b := events.NewBus(events.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))))
	defer b.Close()
	n := 0
	mustSub(t, b, func(RateLimited) { panic("boom") })
	mustSub(t, b, func(RateLimited) { n++ })
	mustSubAll(t, b, func(events.Event) { n++ })
	events.Publish(b, RateLimited{})
	events.Publish(b, RateLimited{})
	wait(t, b)
	if n != 4 {
		t.Fatalf("the other handlers ran %d times, want 4", n)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "ratelimit.limited") {
		t.Fatalf("panic not logged: %q", logs.String())
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestBadArguments(t *testing.T) {
	if _, err := events.Subscribe[events.Connected](nil, func(events.Connected) {}); !errors.Is(err, events.ErrNilBus) {
		t.Fatalf("nil bus: %v", err)
	}
	if _, err := events.SubscribeAll(nil, func(events.Event) {}); !errors.Is(err, events.ErrNilBus) {
		t.Fatalf("SubscribeAll, nil bus: %v", err)
	}
	b := events.NewBus()
	defer b.Close()
	if _, err := events.Subscribe[events.Connected](b, nil); !errors.Is(err, events.ErrNilHandler) {
		t.Fatalf("nil handler: %v", err)
	}
	if _, err := events.SubscribeAll(b, nil); !errors.Is(err, events.ErrNilHandler) {
		t.Fatalf("SubscribeAll, nil handler: %v", err)
	}
	var nilBus *events.Bus
	events.Publish(nilBus, events.Connected{}) // a nil bus publishes nothing
	if err := nilBus.Wait(testCtx(t)); err != nil {
		t.Fatalf("nil bus Wait: %v", err)
	}
	nilBus.Close()
	if events.Enabled[events.Connected](nilBus) || events.Enabled[RateLimited](nilBus) {
		t.Fatal("nil bus enabled")
	}
}

// The events of every connection name themselves with stable topics, and
// report their connection and time from their fields.
func TestCoreEventsDescribeThemselves(t *testing.T) {
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		e     events.Event
		topic string
	}{
		{events.Connected{ConnID: "c1", At: at}, "tether.connected"},
		{events.Disconnected{ConnID: "c1", Code: ws.StatusNormalClosure, At: at}, "tether.disconnected"},
		{events.MessageIn{ConnID: "c1", At: at}, "tether.message.in"},
		{events.MessageOut{ConnID: "c1", At: at}, "tether.message.out"},
		{events.Error{ConnID: "c1", At: at}, "tether.error"},
	} {
		if tc.e.Topic() != tc.topic || tc.e.Source() != "c1" || !tc.e.Time().Equal(at) {
			t.Errorf("%T: topic %q source %q time %v", tc.e, tc.e.Topic(), tc.e.Source(), tc.e.Time())
		}
	}
}

// Every core event type reaches the subscribers of its type and only them.
func TestEveryCoreEventReachesOnlyItsSubscribers(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var got []string
	record := func(e events.Event) { got = append(got, e.Topic()) }
	mustSub(t, b, func(e events.Connected) { record(e) })
	mustSub(t, b, func(e events.Disconnected) { record(e) })
	mustSub(t, b, func(e events.MessageIn) { record(e) })
	mustSub(t, b, func(e events.MessageOut) { record(e) })
	mustSub(t, b, func(e events.Error) { record(e) })
	events.Publish(b, events.Error{})
	events.Publish(b, events.MessageOut{})
	events.Publish(b, events.MessageIn{})
	events.Publish(b, events.Disconnected{})
	events.Publish(b, events.Connected{})
	events.Publish(b, RateLimited{}) // nobody subscribed to it: not delivered
	wait(t, b)
	want := []string{"tether.error", "tether.message.out", "tether.message.in", "tether.disconnected", "tether.connected"}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// Wait returns once what was published before it is delivered, even while
// others keep publishing.
func TestWaitIgnoresLaterEvents(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var mu sync.Mutex
	seen := map[string]bool{}
	mustSub(t, b, func(e events.Connected) { mu.Lock(); seen[e.ConnID] = true; mu.Unlock() })
	stop := make(chan struct{})
	publisherDone := make(chan struct{})
	go func() {
		defer close(publisherDone)
		for {
			select {
			case <-stop:
				return
			default:
				events.Publish(b, events.Connected{ConnID: "noise"})
			}
		}
	}()
	events.Publish(b, events.Connected{ConnID: "mine"})
	wait(t, b) // would block until the publisher stops if it waited for an empty queue
	mu.Lock()
	got := seen["mine"]
	mu.Unlock()
	close(stop)
	<-publisherDone
	wait(t, b) // the noise too, before goleak looks
	if !got {
		t.Fatal("Wait returned before the event published before it was delivered")
	}
}

func BenchmarkPublish(b *testing.B) {
	b.Run("no-subscriber", func(b *testing.B) {
		bus := events.NewBus()
		defer bus.Close()
		e := events.MessageIn{ConnID: "c1", Payload: []byte("x")}
		b.ReportAllocs()
		for b.Loop() {
			events.Publish(bus, e)
		}
	})
	b.Run("no-subscriber-third-party", func(b *testing.B) {
		bus := events.NewBus()
		defer bus.Close()
		mustSub(b, bus, func(RateLimited) {})() // its type is known to the bus
		e := RateLimited{ConnID: "c1", Dropped: 1}
		b.ReportAllocs()
		for b.Loop() {
			events.Publish(bus, e)
		}
	})
	b.Run("one-subscriber", func(b *testing.B) {
		bus := events.NewBus()
		defer bus.Close()
		mustSub(b, bus, func(events.MessageIn) {})
		e := events.MessageIn{ConnID: "c1", Payload: []byte("x")}
		b.ReportAllocs()
		for b.Loop() {
			events.Publish(bus, e)
		}
		wait(b, bus)
	})
}

// A subscription that a handler makes starts with the next event, whichever
// list it joins: a SubscribeAll made while an event is being delivered does
// not receive that event, any more than a typed one does.
func TestSubscriptionMadeByAHandlerStartsWithTheNextEvent(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var got []string
	first := true
	mustSub(t, b, func(e events.Connected) {
		if !first {
			return
		}
		first = false
		mustSubAll(t, b, func(e events.Event) { got = append(got, "all:"+e.Source()) })
		mustSub(t, b, func(e events.Connected) { got = append(got, "typed:"+e.Source()) })
	})
	events.Publish(b, events.Connected{ConnID: "1"})
	events.Publish(b, events.Connected{ConnID: "2"})
	wait(t, b)
	if want := []string{"typed:2", "all:2"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A handler that panics on an event whose own Topic panics (a nil pointer
// to an event type) is contained too: the log names the event's type
// instead, and the bus carries on. (The log line once called Topic inside
// the recover and took the process down.)
func TestPanicOnAnEventWhoseTopicPanics(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	b := events.NewBus(events.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))))
	defer b.Close()
	n := 0
	mustSubAll(t, b, func(e events.Event) {
		n++
		_ = e.Topic() // a nil *RateLimited: panics
	})
	events.Publish(b, (*RateLimited)(nil))
	events.Publish(b, RateLimited{})
	wait(t, b)
	if n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "*events_test.RateLimited") {
		t.Fatalf("panic not logged with the event's type: %q", logs.String())
	}
}
