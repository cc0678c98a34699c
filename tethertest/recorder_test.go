package tethertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
	"github.com/tetherws/tether/tethertest"
)

// One event of every topic, published in this order; a topic added to
// package events without a line here fails the test below.
var oneOfEach = []events.Event{
	events.Connected{ConnID: "k.1", Client: true, At: t0},
	events.MessageOut{ConnID: "k.1", Op: ws.OpText, Payload: []byte("hi"), At: t0},
	events.MessageIn{ConnID: "k.1", Op: ws.OpText, Payload: make([]byte, 40), At: t0},
	heartbeat.PingSent{ConnID: "k.1", Seq: 1, At: t0.Add(30 * time.Second)},
	heartbeat.PongReceived{ConnID: "k.1", Seq: 1, RTT: 5 * time.Millisecond, At: t0.Add(30 * time.Second)},
	heartbeat.PingMissed{ConnID: "k.1", Seq: 2, Missed: 1, At: t0.Add(70 * time.Second)},
	heartbeat.Timeout{ConnID: "k.1", Missed: 1, Err: errors.New("x"), At: t0.Add(70 * time.Second)},
	events.Error{ConnID: "k.1", Fatal: true, Err: errors.New("x"), At: t0.Add(70 * time.Second)},
	events.Disconnected{ConnID: "k.1", Code: ws.StatusAbnormalClosure, At: t0.Add(70 * time.Second)},
	retry.Scheduled{ClientID: "k", Attempt: 1, Delay: time.Second, At: t0.Add(70 * time.Second)},
	retry.Dialing{ClientID: "k", Attempt: 1, At: t0.Add(71 * time.Second)},
	retry.Reconnected{ClientID: "k", ConnID: "k.2", Attempts: 1, Downtime: time.Second, At: t0.Add(71 * time.Second)},
	retry.GaveUp{ClientID: "k", Attempts: 5, At: t0.Add(2 * time.Minute)},
}

var oneOfEachLines = []string{
	"@0s connected k.1 client",
	`@0s message.out k.1 "hi"`,
	`@0s message.in k.1 "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"...(40 bytes)`,
	"@30s heartbeat.sent k.1 #1",
	"@30s heartbeat.pong k.1 #1 rtt=5ms",
	"@1m10s heartbeat.missed k.1 #2 missed=1",
	"@1m10s heartbeat.timeout k.1 missed=1",
	"@1m10s error k.1 fatal=true",
	"@1m10s disconnected k.1 1006 local",
	"@1m10s reconnect.scheduled k #1 in 1s",
	"@1m11s reconnect.attempt k #1",
	"@1m11s reconnect.done k k.2 after 1 down=1s",
	"@2m0s reconnect.gaveup k after 5",
}

func publishAll(bus *events.Bus) {
	for _, e := range oneOfEach {
		switch e := e.(type) {
		case events.Connected:
			events.Publish(bus, e)
		case events.Disconnected:
			events.Publish(bus, e)
		case events.MessageIn:
			events.Publish(bus, e)
		case events.MessageOut:
			events.Publish(bus, e)
		case events.Error:
			events.Publish(bus, e)
		case heartbeat.PingSent:
			events.Publish(bus, e)
		case heartbeat.PongReceived:
			events.Publish(bus, e)
		case heartbeat.PingMissed:
			events.Publish(bus, e)
		case heartbeat.Timeout:
			events.Publish(bus, e)
		case retry.Scheduled:
			events.Publish(bus, e)
		case retry.Dialing:
			events.Publish(bus, e)
		case retry.Reconnected:
			events.Publish(bus, e)
		case retry.GaveUp:
			events.Publish(bus, e)
		}
	}
}

func TestRecorderRecordsEveryTopic(t *testing.T) {
	topics := map[string]bool{}
	for _, e := range oneOfEach {
		topics[e.Topic()] = true
	}
	if len(topics) != len(oneOfEach) {
		t.Fatalf("the test covers %d topics with %d events", len(topics), len(oneOfEach))
	}
	bus := events.NewBus()
	defer bus.Close()
	rec, err := tethertest.NewRecorder(bus, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	publishAll(bus)
	bus.Wait(context.Background())
	equal(t, "lines", rec.Lines(), oneOfEachLines...)
	if evs := rec.Events(); len(evs) != len(oneOfEach) || evs[0].(events.Connected).ConnID != "k.1" {
		t.Fatalf("Events() = %v", evs)
	}
	equal(t, "Take", rec.Take(), oneOfEachLines...)
	equal(t, "Take again", rec.Take())
}

func TestRecorderFiltersAndWaits(t *testing.T) {
	ctx := testCtx(t)
	bus := events.NewBus()
	defer bus.Close()
	rec, err := tethertest.NewRecorder(bus, t0, tethertest.Topics(retry.Dialing{}.Topic(), retry.GaveUp{}.Topic()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := rec.WaitFor(ctx, func(e events.Event) bool { return e.Topic() == (retry.GaveUp{}).Topic() })
		done <- err
	}()
	publishAll(bus)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := rec.TakeN(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "filtered", got, "@1m11s reconnect.attempt k #1", "@2m0s reconnect.gaveup k after 5")
	rec.Close()
	publishAll(bus) // unsubscribed: nothing more is recorded
	bus.Wait(context.Background())
	short, cancel := context.WithCancel(ctx)
	cancel()
	if more, err := rec.TakeN(short, 1); err == nil {
		t.Fatalf("recorded after Close: %q", more)
	}
	if _, err := tethertest.NewRecorder(nil, t0); !errors.Is(err, events.ErrNilBus) {
		t.Fatalf("NewRecorder(nil) = %v", err)
	}
}
