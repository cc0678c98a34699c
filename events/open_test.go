package events_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tetherws/tether/events"
)

// The set of events is open: a type this package does not know, declared
// by a third party, is published and subscribed to like the core's own,
// and reaches only the subscribers of its type.
func TestThirdPartyEventType(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var got []RateLimited
	var connected int
	mustSub(t, b, func(e RateLimited) { got = append(got, e) })
	mustSub(t, b, func(events.Connected) { connected++ })
	if !events.Enabled[RateLimited](b) {
		t.Fatal("a subscribed third-party type reported disabled")
	}
	events.Publish(b, RateLimited{ConnID: "c1", Dropped: 3, At: at})
	events.Publish(b, RateLimited{ConnID: "c2", Dropped: 1, At: at})
	wait(t, b)
	want := []RateLimited{{ConnID: "c1", Dropped: 3, At: at}, {ConnID: "c2", Dropped: 1, At: at}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if connected != 0 {
		t.Fatal("a third party's event reached a Connected subscriber")
	}
}

// Subscriptions are by Go type, not by topic name: a pointer to an event
// type is a type of its own, with its own subscribers.
func TestTypesAreToldApartByType(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var a, p int
	mustSub(t, b, func(RateLimited) { a++ })
	mustSub(t, b, func(*RateLimited) { p++ }) // a pointer is a type of its own
	events.Publish(b, RateLimited{})
	events.Publish(b, &RateLimited{})
	events.Publish(b, &RateLimited{})
	wait(t, b)
	if a != 1 || p != 2 {
		t.Fatalf("value subscriber got %d, pointer subscriber %d; want 1 and 2", a, p)
	}
}

// SubscribeAll receives events of every type, the core's and a third
// party's, and is called after the typed subscribers of the same event.
func TestSubscribeAllSeesEveryTypeAfterTheTypedSubscribers(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var got []string
	mustSubAll(t, b, func(e events.Event) { got = append(got, "all:"+e.Topic()) })
	mustSub(t, b, func(RateLimited) { got = append(got, "typed:ratelimit") }) // subscribed after SubscribeAll
	mustSub(t, b, func(events.Disconnected) { got = append(got, "typed:disconnected") })
	events.Publish(b, events.Connected{})
	events.Publish(b, RateLimited{})
	events.Publish(b, events.Disconnected{})
	events.Publish(b, events.Error{})
	wait(t, b)
	want := []string{
		"all:tether.connected",
		"typed:ratelimit", "all:ratelimit.limited",
		"typed:disconnected", "all:tether.disconnected",
		"all:tether.error",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// Enabled reports a subscriber of every event for any type, and stops
// when it unsubscribes.
func TestEnabledCountsSubscribeAll(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	if events.Enabled[RateLimited](b) || events.Enabled[events.MessageIn](b) {
		t.Fatal("enabled with no subscriber")
	}
	unsub := mustSubAll(t, b, func(events.Event) {})
	if !events.Enabled[RateLimited](b) || !events.Enabled[events.MessageIn](b) {
		t.Fatal("a SubscribeAll subscriber did not enable every type")
	}
	unsub()
	if events.Enabled[RateLimited](b) || events.Enabled[events.MessageIn](b) {
		t.Fatal("enabled after the SubscribeAll subscriber left")
	}
}

// Publishing an event nobody subscribed to allocates nothing, for a core
// event and for a third party's, whether the bus never saw the type, saw
// it subscribed and unsubscribed, or serves other types meanwhile.
func TestPublishWithoutSubscriberAllocatesNothing(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	mustSub(t, b, func(events.Connected) {}) // another type is busy; these are not
	in := events.MessageIn{ConnID: "c1", Payload: []byte("x")}
	limited := RateLimited{ConnID: "c1", Dropped: 1}
	check := func(when string) {
		t.Helper()
		if a := testing.AllocsPerRun(1000, func() { events.Publish(b, in) }); a != 0 {
			t.Errorf("%s: %v allocations per MessageIn publish", when, a)
		}
		if a := testing.AllocsPerRun(1000, func() { events.Publish(b, limited) }); a != 0 {
			t.Errorf("%s: %v allocations per third-party publish", when, a)
		}
		if a := testing.AllocsPerRun(1000, func() { _ = events.Enabled[RateLimited](b) }); a != 0 {
			t.Errorf("%s: %v allocations per Enabled", when, a)
		}
	}
	check("type never seen")
	mustSub(t, b, func(RateLimited) {})()
	mustSub(t, b, func(events.MessageIn) {})()
	mustSubAll(t, b, func(events.Event) {})()
	check("type seen, subscribers gone")
	wait(t, b)
}

// A type parameter that is an interface cannot be subscribed to (no event
// is published as an interface value): ErrInterfaceType, which points to
// SubscribeAll.
func TestSubscribeToAnInterfaceIsAnError(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	if _, err := events.Subscribe(b, func(events.Event) {}); !errors.Is(err, events.ErrInterfaceType) {
		t.Fatalf("Subscribe[events.Event]: %v", err)
	}
	type limitedEvent interface {
		events.Event
		Limited()
	}
	if _, err := events.Subscribe(b, func(limitedEvent) {}); !errors.Is(err, events.ErrInterfaceType) {
		t.Fatalf("Subscribe[an interface of the caller's]: %v", err)
	}
}

// An event published through an interface type (a bridge that forwards
// what a SubscribeAll handler received) reaches the subscribers of its
// dynamic type; a nil one is dropped, never handed to a handler.
func TestPublishThroughAnInterface(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var typed, connected int
	var all []events.Event
	mustSub(t, b, func(RateLimited) { typed++ })
	mustSub(t, b, func(events.Connected) { connected++ })
	mustSubAll(t, b, func(e events.Event) { all = append(all, e) })
	var e events.Event = RateLimited{ConnID: "c1"}
	events.Publish(b, e)
	events.Publish[events.Event](b, events.Connected{ConnID: "c2"})
	events.Publish[events.Event](b, nil)
	wait(t, b)
	if typed != 1 || connected != 1 {
		t.Fatalf("typed subscribers got %d RateLimited and %d Connected, want 1 and 1", typed, connected)
	}
	if len(all) != 2 || all[0] == nil || all[1] == nil {
		t.Fatalf("SubscribeAll got %v, want the two events and no nil", all)
	}
}

// Enabled with an interface type parameter never says no when a Publish
// through that interface could deliver: with a typed subscriber only, it
// reports true (core.Emit checks Enabled before it publishes, and would
// drop the event otherwise).
func TestEnabledThroughAnInterface(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	if events.Enabled[events.Event](b) {
		t.Fatal("Enabled[events.Event] with no subscriber")
	}
	unsub := mustSub(t, b, func(RateLimited) {})
	if !events.Enabled[events.Event](b) {
		t.Fatal("Enabled[events.Event] = false with a RateLimited subscriber: an event published through the interface would be dropped")
	}
	unsub()
	if events.Enabled[events.Event](b) {
		t.Fatal("Enabled[events.Event] after the last subscriber left")
	}
	if a := testing.AllocsPerRun(100, func() { _ = events.Enabled[events.Event](b) }); a != 0 {
		t.Fatalf("%v allocations per Enabled[events.Event]", a)
	}
}

// A SubscribeAll subscriber can skip types (Except): their events never
// reach it, it does not make them enabled (so per-message events are not
// even built for a logger that drops them), and another subscriber of the
// type still gets them. Unsubscribing restores the counts.
func TestSubscribeAllExcept(t *testing.T) {
	b := events.NewBus()
	defer b.Close()
	var got []string
	unsub, err := events.SubscribeAll(b, func(e events.Event) { got = append(got, e.Topic()) },
		events.Except[events.MessageIn](), events.Except[events.MessageOut](), events.Except[RateLimited](),
		events.Except[events.MessageIn]()) // twice: counted once
	if err != nil {
		t.Fatal(err)
	}
	if events.Enabled[events.MessageIn](b) || events.Enabled[events.MessageOut](b) || events.Enabled[RateLimited](b) {
		t.Fatal("a skipped type is enabled by the subscriber that skips it")
	}
	if !events.Enabled[events.Connected](b) || !events.Enabled[events.Error](b) {
		t.Fatal("a type not skipped is not enabled")
	}
	if a := testing.AllocsPerRun(1000, func() { events.Publish(b, events.MessageIn{ConnID: "c1"}) }); a != 0 {
		t.Fatalf("%v allocations publishing a skipped type", a)
	}
	var typed []string
	mustSub(t, b, func(e RateLimited) { typed = append(typed, e.Topic()) })
	if !events.Enabled[RateLimited](b) {
		t.Fatal("a typed subscriber does not enable a type another one skips")
	}
	events.Publish(b, events.MessageIn{ConnID: "c1"})
	events.Publish(b, RateLimited{ConnID: "c1"})
	events.Publish(b, events.Connected{ConnID: "c1"})
	wait(t, b)
	if len(got) != 1 || got[0] != "tether.connected" || len(typed) != 1 {
		t.Fatalf("SubscribeAll got %q, the typed subscriber %q", got, typed)
	}

	other := mustSubAll(t, b, func(events.Event) {}) // skips nothing
	if !events.Enabled[events.MessageIn](b) {
		t.Fatal("a second SubscribeAll that skips nothing does not enable MessageIn")
	}
	other()
	unsub()
	if events.Enabled[events.Connected](b) {
		t.Fatal("enabled after every SubscribeAll left")
	}
	mustSubAll(t, b, func(events.Event) {})()
	if events.Enabled[events.MessageIn](b) {
		t.Fatal("counts not restored")
	}
	if _, err := events.SubscribeAll(b, func(events.Event) {}, events.Except[events.Event]()); !errors.Is(err, events.ErrInterfaceType) {
		t.Fatalf("Except of an interface: %v", err)
	}
	if _, err := events.SubscribeAll(b, func(events.Event) {}, events.Skip{}); !errors.Is(err, events.ErrInterfaceType) {
		t.Fatalf("a zero Skip: %v", err)
	}
}
