package reliability_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// evlog records a client's lifecycle events in the order the bus delivers
// them (publish order).
type evlog struct {
	t   *testing.T
	bus *events.Bus
	ch  chan any
}

func newEvlog(t *testing.T) *evlog {
	t.Helper()
	bus := events.NewBus()
	l := &evlog{t: t, bus: bus, ch: make(chan any, 1<<16)}
	add := func(e any) { l.ch <- e }
	sub := func(_ func(), err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	sub(events.Subscribe(bus, func(e events.Connected) { add(e) }))
	sub(events.Subscribe(bus, func(e events.Disconnected) { add(e) }))
	sub(events.Subscribe(bus, func(e retry.Scheduled) { add(e) }))
	sub(events.Subscribe(bus, func(e retry.Dialing) { add(e) }))
	sub(events.Subscribe(bus, func(e retry.Reconnected) { add(e) }))
	sub(events.Subscribe(bus, func(e retry.GaveUp) { add(e) }))
	sub(events.Subscribe(bus, func(e heartbeat.PingSent) { add(e) }))
	sub(events.Subscribe(bus, func(e heartbeat.PongReceived) { add(e) }))
	sub(events.Subscribe(bus, func(e heartbeat.PingMissed) { add(e) }))
	sub(events.Subscribe(bus, func(e heartbeat.Timeout) { add(e) }))
	return l
}

// next returns the next event.
func (l *evlog) next() any {
	l.t.Helper()
	select {
	case e := <-l.ch:
		return e
	case <-time.After(hangGuard): // wall time: hang guard only
		l.t.Fatal("no event")
		return nil
	}
}

// await returns the next event of type E, skipping others; a GaveUp on the
// way fails the test.
func await[E any](l *evlog) E {
	l.t.Helper()
	for {
		e := l.next()
		if g, ok := e.(retry.GaveUp); ok {
			l.t.Fatalf("the client gave up: %v", g.LastErr)
		}
		if v, ok := e.(E); ok {
			return v
		}
	}
}

// pending returns the events not yet taken, without waiting. Call after
// bus.Wait to see everything published so far.
func (l *evlog) pending() []any {
	var out []any
	for {
		select {
		case e := <-l.ch:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (l *evlog) close() { l.bus.Close() }

func describe(e any) string {
	switch e := e.(type) {
	case events.Disconnected:
		return fmt.Sprintf("Disconnected %s %d: %v", e.ConnID, e.Code, e.Err)
	case retry.Scheduled:
		return fmt.Sprintf("Scheduled #%d in %v: %v", e.Attempt, e.Delay, e.Cause)
	default:
		return fmt.Sprintf("%T %+v", e, e)
	}
}

// step advances the fake clock by d once n timers are armed: the goroutines
// under test hold their timers before time moves.
func step(t *testing.T, clock *clockwork.FakeClock, n int, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	defer cancel()
	if err := clock.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("no timer armed: %v", err)
	}
	clock.Advance(d)
}

// armed waits until n timers are armed.
func armed(t *testing.T, clock *clockwork.FakeClock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	defer cancel()
	if err := clock.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("no timer armed: %v", err)
	}
}
