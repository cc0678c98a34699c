package events

import (
	"time"

	"github.com/gobwas/ws"
)

// Event is what every event type implements: a name, what it is about and
// when it happened. The set of event types is open: any package defines
// its own (heartbeat.Timeout, retry.GaveUp, a third party's RateLimited)
// and publishes them on the same bus; a value receiver on a struct is the
// usual shape:
//
//	type RateLimited struct {
//		ConnID  string
//		Dropped int
//		At      time.Time
//	}
//
//	func (RateLimited) Topic() string       { return "ratelimit.limited" }
//	func (e RateLimited) Source() string    { return e.ConnID }
//	func (e RateLimited) Time() time.Time   { return e.At }
type Event interface {
	// Topic names the kind of event for logs and bridges, by convention
	// "package.event" in lower case ("tether.connected",
	// "tether.heartbeat.timeout"). Subscriptions are by Go type, not by
	// this name.
	Topic() string
	// Source is the id of the connection or client the event is about
	// ("" if none).
	Source() string
	// Time is when the event happened, on the clock of its publisher
	// (the injected clock for tether's own events).
	Time() time.Time
}

// The events every connection publishes. Plugins own theirs: heartbeat's
// are in package heartbeat, the reconnect plugin's in package retry.

// Connected is published once per connection, when its opening handshake
// completed (Dial, Upgrade or Accept returns it), before anything else the
// connection publishes.
type Connected struct {
	ConnID      string    // the connection's id
	Client      bool      // true on the dialing side
	LocalAddr   string    // local network address
	RemoteAddr  string    // remote network address
	Subprotocol string    // the negotiated subprotocol, if any
	At          time.Time // on the connection's clock
}

// Disconnected is published once when a connection has closed, after the
// socket was released and after every other event of the connection.
// Code and Reason are those of the close frame that ended it (sent or
// received); Code is ws.StatusAbnormalClosure (1006) when the connection
// was lost without a close frame.
type Disconnected struct {
	ConnID string
	Code   ws.StatusCode
	Reason string
	Remote bool  // true when the peer initiated the close
	Err    error // the cause; a *core.CloseError
	At     time.Time
}

// MessageIn is published for each inbound data message that reached the end
// of the inbound middleware chain, only while someone subscribes to it.
// Payload is a copy that the handler may keep.
type MessageIn struct {
	ConnID  string
	Op      ws.OpCode // ws.OpText or ws.OpBinary
	Payload []byte
	At      time.Time
}

// MessageOut is published for each outbound data message written to the
// connection's buffer, only while someone subscribes to it. Payload is a copy
// that the handler may keep.
type MessageOut struct {
	ConnID  string
	Op      ws.OpCode
	Payload []byte
	At      time.Time
}

// Error is published when an error is reported on a connection. Fatal
// errors (a protocol violation, a middleware error on the inbound path, a
// failed write) are followed by Disconnected; others (an outbound middleware
// that refused a message) leave the connection open.
type Error struct {
	ConnID string
	Err    error
	Fatal  bool
	At     time.Time
}

// Topic implements Event.
func (Connected) Topic() string { return "tether.connected" }

// Source implements Event: the connection's id.
func (e Connected) Source() string { return e.ConnID }

// Time implements Event.
func (e Connected) Time() time.Time { return e.At }

// Topic implements Event.
func (Disconnected) Topic() string { return "tether.disconnected" }

// Source implements Event: the connection's id.
func (e Disconnected) Source() string { return e.ConnID }

// Time implements Event.
func (e Disconnected) Time() time.Time { return e.At }

// Topic implements Event.
func (MessageIn) Topic() string { return "tether.message.in" }

// Source implements Event: the connection's id.
func (e MessageIn) Source() string { return e.ConnID }

// Time implements Event.
func (e MessageIn) Time() time.Time { return e.At }

// Topic implements Event.
func (MessageOut) Topic() string { return "tether.message.out" }

// Source implements Event: the connection's id.
func (e MessageOut) Source() string { return e.ConnID }

// Time implements Event.
func (e MessageOut) Time() time.Time { return e.At }

// Topic implements Event.
func (Error) Topic() string { return "tether.error" }

// Source implements Event: the connection's id.
func (e Error) Source() string { return e.ConnID }

// Time implements Event.
func (e Error) Time() time.Time { return e.At }
