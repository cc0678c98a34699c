package core_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// The order of a connection's events, and the consistency of what its
// methods and events say about its end.

type eventLog struct {
	mu  sync.Mutex
	log []string
}

func (l *eventLog) add(s string) { l.mu.Lock(); l.log = append(l.log, s); l.mu.Unlock() }

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.log...)
}

func recordAll(t *testing.T, b *events.Bus) *eventLog {
	t.Helper()
	l := &eventLog{}
	for _, sub := range []func() (func(), error){
		func() (func(), error) { return events.Subscribe(b, func(events.Connected) { l.add("connected") }) },
		func() (func(), error) { return events.Subscribe(b, func(events.MessageOut) { l.add("out") }) },
		func() (func(), error) { return events.Subscribe(b, func(e events.Error) { l.add("error") }) },
		func() (func(), error) {
			return events.Subscribe(b, func(events.Disconnected) { l.add("disconnected") })
		},
	} {
		if _, err := sub(); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// The peer's answer and the close timer race: whichever wins, Serve, Err
// and the Disconnected event tell the same story (a clean close, or one
// whose Err is ErrCloseTimeout), and the cause is never changed after it
// was published (checked by -race).
func TestCloseTimerRacingTheAnswerIsConsistent(t *testing.T) {
	for range 50 {
		clock := clockwork.NewFakeClock()
		bus := events.NewBus()
		seen := make(chan error, 1)
		unsub, err := events.Subscribe(bus, func(e events.Disconnected) { seen <- e.Err })
		if err != nil {
			t.Fatal(err)
		}
		p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock, Bus: bus}})
		if err := p.srv.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Fatalf("Close = %v", err)
		}
		p.readClose(t)
		if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		answered := make(chan error, 1)
		go func() {
			answered <- ws.WriteFrame(p.nc, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
		}()
		clock.Advance(core.DefaultCloseTimeout)
		serr := waitErr(t, p.serve)
		ev := waitErr(t, seen)
		<-answered
		ce := asClose(t, serr)
		timedOut := errors.Is(serr, core.ErrCloseTimeout)
		if ce.Code != ws.StatusNormalClosure || ce.Remote || (ce.Err != nil && !timedOut) {
			t.Fatalf("cause %+v, want local 1000, clean or timed out", ce)
		}
		if errors.Is(ev, core.ErrCloseTimeout) != timedOut || p.srv.Err() != serr {
			t.Fatalf("inconsistent: Serve=%v event=%v Err()=%v", serr, ev, p.srv.Err())
		}
		unsub()
		bus.Close()
	}
}

// A writer stuck when Close's timer fires: its fatal Error comes before
// Disconnected, every time.
func TestStuckWriterErrorBeforeDisconnected(t *testing.T) {
	for range 20 {
		bus := events.NewBus()
		l := recordAll(t, bus)
		clock := clockwork.NewFakeClock()
		p, writerDone := newStuckPeer(t, &core.Upgrader{Config: core.Config{Bus: bus, Clock: clock}})
		// The close frame is handed to the stuck writer: Close returns.
		if err := returns(t, "Close", func() error { return p.srv.Close(ws.StatusNormalClosure, "") }); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(core.DefaultCloseTimeout)
		waitErr(t, writerDone)
		waitDone(t, p.srv)
		busWait(t, bus)
		got := l.snapshot()
		bus.Close()
		if got[len(got)-1] != "disconnected" {
			t.Fatalf("events %v: Disconnected is not last", got)
		}
	}
}
