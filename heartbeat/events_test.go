package heartbeat_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// The heartbeat's events keep the topic names they had when package events
// declared them (logs and bridges key on them), report their connection
// and time, and reach the subscribers of their own type on any bus.
func TestEventsDescribeThemselves(t *testing.T) {
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	all := []struct {
		e     events.Event
		topic string
	}{
		{heartbeat.PingSent{ConnID: "c1", Seq: 1, At: at}, "tether.heartbeat.sent"},
		{heartbeat.PongReceived{ConnID: "c1", Seq: 1, At: at}, "tether.heartbeat.pong"},
		{heartbeat.PingMissed{ConnID: "c1", Seq: 1, At: at}, "tether.heartbeat.missed"},
		{heartbeat.Timeout{ConnID: "c1", At: at}, "tether.heartbeat.timeout"},
	}
	for _, tc := range all {
		if tc.e.Topic() != tc.topic || tc.e.Source() != "c1" || !tc.e.Time().Equal(at) {
			t.Errorf("%T: topic %q source %q time %v", tc.e, tc.e.Topic(), tc.e.Source(), tc.e.Time())
		}
	}

	bus := events.NewBus()
	t.Cleanup(func() { bus.Close(); _ = bus.Wait(testCtx(t)) })
	var got []string
	record := func(e events.Event) { got = append(got, e.Topic()) }
	subscribe(t, bus, func(e heartbeat.PingSent) { record(e) })
	subscribe(t, bus, func(e heartbeat.PongReceived) { record(e) })
	subscribe(t, bus, func(e heartbeat.PingMissed) { record(e) })
	subscribe(t, bus, func(e heartbeat.Timeout) { record(e) })
	var want []string
	for i := len(all) - 1; i >= 0; i-- {
		events.Publish(bus, all[i].e) // through the interface: delivered by dynamic type
		want = append(want, all[i].topic)
	}
	if err := bus.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}
