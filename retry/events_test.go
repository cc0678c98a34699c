package retry_test

import (
	"testing"
	"time"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
)

// The reconnect events keep the topic names they had when package events
// declared them (logs and bridges key on them), and report their client
// and time.
func TestEventsDescribeThemselves(t *testing.T) {
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		e     events.Event
		topic string
	}{
		{retry.Scheduled{ClientID: "k", At: at}, "tether.reconnect.scheduled"},
		{retry.Dialing{ClientID: "k", At: at}, "tether.reconnect.attempt"},
		{retry.Reconnected{ClientID: "k", ConnID: "k.2", At: at}, "tether.reconnect.done"},
		{retry.GaveUp{ClientID: "k", At: at}, "tether.reconnect.gaveup"},
	} {
		if tc.e.Topic() != tc.topic || tc.e.Source() != "k" || !tc.e.Time().Equal(at) {
			t.Errorf("%T: topic %q source %q time %v", tc.e, tc.e.Topic(), tc.e.Source(), tc.e.Time())
		}
	}
}
