package events_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tetherws/tether/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// RateLimited is a third party's event: a type this package has never
// heard of, declared the way events.Event's doc shows.
type RateLimited struct {
	ConnID  string
	Dropped int
	At      time.Time
}

func (RateLimited) Topic() string     { return "ratelimit.limited" }
func (e RateLimited) Source() string  { return e.ConnID }
func (e RateLimited) Time() time.Time { return e.At }

var _ events.Event = RateLimited{}

func mustSub[E events.Event](t testing.TB, b *events.Bus, fn func(E)) func() {
	t.Helper()
	u, err := events.Subscribe(b, fn)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustSubAll(t testing.TB, b *events.Bus, fn func(events.Event)) func() {
	t.Helper()
	u, err := events.SubscribeAll(b, fn)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testCtx bounds a wait that needs the bus to make progress, so that a bug
// fails the test instead of hanging it; nothing waits for it when the code
// works.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // wall time: hang guard only
	t.Cleanup(cancel)
	return ctx
}

// wait is b.Wait bounded by testCtx; it fails t if the bus never caught up.
func wait(t testing.TB, b *events.Bus) {
	t.Helper()
	if err := b.Wait(testCtx(t)); err != nil {
		t.Fatalf("bus.Wait: %v", err)
	}
}
