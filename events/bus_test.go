package events_test

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/tetherws/tether/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Events reach subscribers in publish order, across topics.
func TestOrderAcrossTopics(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var got []string
	record := func(s string) { got = append(got, s) } // only the dispatcher goroutine appends
	mustSub(t, b, func(e events.Connected) { record("connected:" + e.ConnID) })
	mustSub(t, b, func(e events.MessageIn) { record("in:" + string(e.Payload)) })
	mustSub(t, b, func(e events.Disconnected) { record("disconnected:" + e.ConnID) })

	var want []string
	for i := range 200 {
		id := string(rune('a' + i%26))
		events.Publish(b, events.Connected{ConnID: id})
		events.Publish(b, events.MessageIn{Payload: []byte(id)})
		events.Publish(b, events.Disconnected{ConnID: id})
		want = append(want, "connected:"+id, "in:"+id, "disconnected:"+id)
	}
	b.Wait()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("delivery out of order:\n got %v\nwant %v", got[:9], want[:9])
	}
}

// A handler that publishes, subscribes and unsubscribes does not deadlock
// (EventBus alone would), and the event it publishes is delivered after
// the current one.
func TestHandlerPublishesAndSubscribes(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var mu sync.Mutex
	var got []string
	add := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
	var unsubLate func()
	mustSub(t, b, func(e events.Connected) {
		add("connected")
		events.Publish(b, events.Error{ConnID: e.ConnID, Err: errors.New("from handler")})
		var err error
		unsubLate, err = events.Subscribe(b, func(e events.Error) { add("late:" + e.Err.Error()) })
		if err != nil {
			t.Error(err)
		}
		b.Wait() // from a handler: returns at once instead of waiting for itself
	})
	mustSub(t, b, func(e events.Error) { add("error:" + e.Err.Error()) })
	events.Publish(b, events.Connected{ConnID: "x"})
	b.Wait() // Connected delivered; the handler had published its Error by then
	b.Wait() // and that Error delivered
	unsubLate()
	events.Publish(b, events.Error{Err: errors.New("after")})
	b.Wait()
	want := "connected,error:from handler,late:from handler,error:after"
	if g := strings.Join(got, ","); g != want {
		t.Fatalf("got %s\nwant %s", g, want)
	}
}

// Unsubscribe removes exactly its own subscription, even when several
// subscriptions share one function (EventBus compares function pointers and
// would remove the wrong one).
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
	b.Wait()
	if counts[0] != 1 || counts[1] != 0 || counts[2] != 1 {
		t.Fatalf("counts %v, want [1 0 1]", counts)
	}
	if !events.Enabled[events.Connected](b) {
		t.Fatal("topic reported disabled with two subscribers left")
	}
	unsubs[0]()
	unsubs[2]()
	if events.Enabled[events.Connected](b) {
		t.Fatal("topic reported enabled with no subscriber")
	}
}

// A panicking handler is logged; the others and later events still run.
func TestHandlerPanicIsContained(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	b := events.NewBus(events.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))))
	defer b.Close()
	n := 0
	mustSub(t, b, func(events.Connected) { panic("boom") })
	mustSub(t, b, func(events.Connected) { n++ })
	events.Publish(b, events.Connected{})
	events.Publish(b, events.Connected{})
	b.Wait()
	if n != 2 {
		t.Fatalf("second handler ran %d times, want 2", n)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "tether.connected") {
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

func TestBadArgumentsAndClose(t *testing.T) {
	if _, err := events.Subscribe[events.Connected](nil, func(events.Connected) {}); !errors.Is(err, events.ErrNilBus) {
		t.Fatalf("nil bus: %v", err)
	}
	b := events.NewBus()
	if _, err := events.Subscribe[events.Connected](b, nil); !errors.Is(err, events.ErrNilHandler) {
		t.Fatalf("nil handler: %v", err)
	}
	got := 0
	mustSub(t, b, func(events.Connected) { got++ })
	events.Publish(b, events.Connected{})
	b.Close()
	b.Close()
	if got != 1 {
		t.Fatalf("Close did not deliver what was queued: %d", got)
	}
	events.Publish(b, events.Connected{}) // discarded, no goroutine started
	if _, err := events.Subscribe(b, func(events.Connected) {}); !errors.Is(err, events.ErrBusClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	var nilBus *events.Bus
	events.Publish(nilBus, events.Connected{}) // a nil bus publishes nothing
	nilBus.Wait()
	if events.Enabled[events.Connected](nilBus) {
		t.Fatal("nil bus enabled")
	}
}

func TestTopicNames(t *testing.T) {
	seen := map[string]bool{}
	for _, tp := range events.Topics() {
		name := tp.String()
		if !strings.HasPrefix(name, "tether.") || seen[name] {
			t.Fatalf("bad or duplicate topic name %q", name)
		}
		seen[name] = true
	}
	if len(seen) != 13 {
		t.Fatalf("%d topics", len(seen))
	}
	if events.Topic(0).String() != "tether.unknown" || events.Topic(200).String() != "tether.unknown" {
		t.Fatal("out-of-range topic has a name")
	}
}

// Every payload struct subscribes and publishes on its own topic, and
// reaches only its own subscribers.
func TestEveryPayloadHasItsTopic(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var got []events.Topic
	sub := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	record := func(e events.Event) { got = append(got, e.Topic()) }
	_, err := events.Subscribe(b, func(e events.HeartbeatSent) { record(e) })
	sub(err)
	_, err = events.Subscribe(b, func(e events.PongReceived) { record(e) })
	sub(err)
	_, err = events.Subscribe(b, func(e events.HeartbeatMissed) { record(e) })
	sub(err)
	_, err = events.Subscribe(b, func(e events.HeartbeatTimeout) { record(e) })
	sub(err)
	_, err = events.Subscribe(b, func(e events.ReconnectScheduled) { record(e) })
	sub(err)
	_, err = events.Subscribe(b, func(e events.ReconnectAttempt) { record(e) })
	sub(err)
	_, err = events.Subscribe(b, func(e events.Reconnected) { record(e) })
	sub(err)
	_, err = events.Subscribe(b, func(e events.GaveUp) { record(e) })
	sub(err)
	events.Publish(b, events.GaveUp{})
	events.Publish(b, events.Reconnected{})
	events.Publish(b, events.ReconnectAttempt{})
	events.Publish(b, events.ReconnectScheduled{})
	events.Publish(b, events.HeartbeatTimeout{})
	events.Publish(b, events.HeartbeatMissed{})
	events.Publish(b, events.PongReceived{})
	events.Publish(b, events.HeartbeatSent{})
	events.Publish(b, events.Connected{}) // nobody subscribed: not delivered
	b.Wait()
	want := []events.Topic{
		events.TopicGaveUp, events.TopicReconnected, events.TopicReconnectAttempt, events.TopicReconnectScheduled,
		events.TopicHeartbeatTimeout, events.TopicHeartbeatMissed, events.TopicPongReceived, events.TopicHeartbeatSent,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// Publishing with nobody subscribed allocates nothing.
func TestPublishWithoutSubscriberAllocatesNothing(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	mustSub(t, b, func(events.Connected) {}) // another topic is busy; this one is not
	e := events.MessageIn{ConnID: "c1", Payload: []byte("x")}
	if a := testing.AllocsPerRun(1000, func() { events.Publish(b, e) }); a != 0 {
		t.Fatalf("%v allocations per publish", a)
	}
}

func mustSub[E events.Event](t *testing.T, b *events.Bus, fn func(E)) func() {
	t.Helper()
	u, err := events.Subscribe(b, fn)
	if err != nil {
		t.Fatal(err)
	}
	return u
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
	b.Run("one-subscriber", func(b *testing.B) {
		bus := events.NewBus()
		defer bus.Close()
		_, _ = events.Subscribe(bus, func(events.MessageIn) {})
		e := events.MessageIn{ConnID: "c1", Payload: []byte("x")}
		b.ReportAllocs()
		for b.Loop() {
			events.Publish(bus, e)
		}
		bus.Wait()
	})
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
	b.Wait() // would block until the publisher stops if it waited for an empty queue
	mu.Lock()
	got := seen["mine"]
	mu.Unlock()
	close(stop)
	<-publisherDone
	if !got {
		t.Fatal("Wait returned before the event published before it was delivered")
	}
}

// When unsubscribe returns, the handler is not running and never runs again.
func TestUnsubscribeWaitsForRunningCall(t *testing.T) {
	for range 20 {
		b := events.NewBus()
		entered := make(chan struct{})
		release := make(chan struct{})
		var running, calls atomic.Int32
		unsub := mustSub(t, b, func(events.Connected) {
			running.Add(1)
			if calls.Add(1) == 1 {
				close(entered)
				<-release
			}
			running.Add(-1)
		})
		events.Publish(b, events.Connected{})
		<-entered
		started := make(chan struct{})
		runningAtReturn := make(chan int32, 1)
		go func() {
			close(started)
			unsub()
			runningAtReturn <- running.Load()
		}()
		<-started
		close(release) // races with unsub on purpose: either order must hold
		if n := <-runningAtReturn; n != 0 {
			t.Fatal("unsubscribe returned while the handler was running")
		}
		events.Publish(b, events.Connected{})
		b.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("handler called %d times, want 1", n)
		}
		b.Close()
	}
}

// Type parameters that are not payload structs get an error or nothing,
// never a panic.
func TestNonPayloadTypeParameters(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	if _, err := events.Subscribe(b, func(*events.Connected) {}); !errors.Is(err, events.ErrNotAPayload) {
		t.Fatalf("Subscribe[*Connected]: %v", err)
	}
	if _, err := events.Subscribe(b, func(events.Event) {}); !errors.Is(err, events.ErrNotAPayload) {
		t.Fatalf("Subscribe[Event]: %v", err)
	}
	if events.Enabled[events.Event](b) || events.Enabled[*events.Connected](b) {
		t.Fatal("a non-payload type reported enabled")
	}
	got := 0
	mustSub(t, b, func(events.Connected) { got++ })
	events.Publish(b, &events.Connected{}) // not delivered: subscribers take values
	events.Publish[events.Event](b, nil)
	events.Publish(b, events.Connected{})
	b.Wait()
	if got != 1 {
		t.Fatalf("got %d events, want 1", got)
	}
}
