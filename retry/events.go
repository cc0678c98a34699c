package retry

import (
	"time"

	"github.com/tetherws/tether/events"
)

// The reconnect plugin's events, published on the client's bus in the order
// they happen, after the Disconnected of the connection that was lost.

// Scheduled is published when a client lost its connection (or an attempt
// failed) and will try again after Delay. Attempt counts from 1 in the
// outage; Cause is why the previous connection or attempt ended.
type Scheduled struct {
	ClientID string
	Attempt  int
	Delay    time.Duration
	Cause    error
	At       time.Time
}

// Dialing is published when an attempt starts dialing.
type Dialing struct {
	ClientID string
	Attempt  int
	At       time.Time
}

// Reconnected is published when an attempt succeeded, after the
// connection's Connected and after the client's on-reconnect hook ran,
// before queued messages are flushed; it comes before that connection's
// Disconnected, or not at all if the connection ended first. Attempts is
// how many attempts the outage took; Downtime runs from the start of the
// outage.
type Reconnected struct {
	ClientID string
	ConnID   string // the new connection
	Attempts int
	Downtime time.Duration
	At       time.Time
}

// GaveUp is published once when a client stopped reconnecting: the policy
// allows no further attempt, or the last error is not worth retrying.
type GaveUp struct {
	ClientID string
	Attempts int
	LastErr  error
	At       time.Time
}

var (
	_ events.Event = Scheduled{}
	_ events.Event = Dialing{}
	_ events.Event = Reconnected{}
	_ events.Event = GaveUp{}
)

// Topic implements events.Event.
func (Scheduled) Topic() string { return "tether.reconnect.scheduled" }

// Source implements events.Event: the client's id.
func (e Scheduled) Source() string { return e.ClientID }

// Time implements events.Event.
func (e Scheduled) Time() time.Time { return e.At }

// Topic implements events.Event.
func (Dialing) Topic() string { return "tether.reconnect.attempt" }

// Source implements events.Event: the client's id.
func (e Dialing) Source() string { return e.ClientID }

// Time implements events.Event.
func (e Dialing) Time() time.Time { return e.At }

// Topic implements events.Event.
func (Reconnected) Topic() string { return "tether.reconnect.done" }

// Source implements events.Event: the client's id.
func (e Reconnected) Source() string { return e.ClientID }

// Time implements events.Event.
func (e Reconnected) Time() time.Time { return e.At }

// Topic implements events.Event.
func (GaveUp) Topic() string { return "tether.reconnect.gaveup" }

// Source implements events.Event: the client's id.
func (e GaveUp) Source() string { return e.ClientID }

// Time implements events.Event.
func (e GaveUp) Time() time.Time { return e.At }
