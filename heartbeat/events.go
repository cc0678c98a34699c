package heartbeat

import (
	"time"

	"github.com/tetherws/tether/events"
)

// The heartbeat's events. It publishes them on the connection's bus with
// core.Emit, so that they come before the connection's Disconnected.

// PingSent is published when the heartbeat is sending a ping on a
// connection, just before the write (which a close racing it may refuse).
// Seq counts the pings of that connection from 1.
type PingSent struct {
	ConnID string
	Seq    uint64
	At     time.Time
}

// PongReceived is published when the answer to the heartbeat's ping
// arrived. RTT is the time from the ping to its answer on the connection's
// clock.
type PongReceived struct {
	ConnID string
	Seq    uint64 // the ping answered
	RTT    time.Duration
	At     time.Time
}

// PingMissed is published when a ping went unanswered within the
// heartbeat's timeout. Missed counts consecutive misses from 1; when it
// exceeds the tolerated count (Config.MaxMissed), Timeout follows.
type PingMissed struct {
	ConnID string
	Seq    uint64 // the ping that went unanswered
	Missed int
	At     time.Time
}

// Timeout is published when the heartbeat declared a connection dead, just
// before it aborts it. Err matches ErrTimeout. The connection's
// Disconnected follows.
type Timeout struct {
	ConnID string
	Missed int
	Err    error
	At     time.Time
}

// Topic implements events.Event.
func (PingSent) Topic() string { return "tether.heartbeat.sent" }

// Source implements events.Event: the connection's id.
func (e PingSent) Source() string { return e.ConnID }

// Time implements events.Event.
func (e PingSent) Time() time.Time { return e.At }

// Topic implements events.Event.
func (PongReceived) Topic() string { return "tether.heartbeat.pong" }

// Source implements events.Event: the connection's id.
func (e PongReceived) Source() string { return e.ConnID }

// Time implements events.Event.
func (e PongReceived) Time() time.Time { return e.At }

// Topic implements events.Event.
func (PingMissed) Topic() string { return "tether.heartbeat.missed" }

// Source implements events.Event: the connection's id.
func (e PingMissed) Source() string { return e.ConnID }

// Time implements events.Event.
func (e PingMissed) Time() time.Time { return e.At }

// Topic implements events.Event.
func (Timeout) Topic() string { return "tether.heartbeat.timeout" }

// Source implements events.Event: the connection's id.
func (e Timeout) Source() string { return e.ConnID }

// Time implements events.Event.
func (e Timeout) Time() time.Time { return e.At }

var (
	_ events.Event = PingSent{}
	_ events.Event = PongReceived{}
	_ events.Event = PingMissed{}
	_ events.Event = Timeout{}
)
