package events

import (
	"time"

	"github.com/gobwas/ws"
)

// Topic names one kind of event. Its String form is the topic name under
// which events are published on the underlying EventBus.
type Topic uint8

// The topics. Each has exactly one payload struct, named after it.
const (
	// TopicConnected fires once when a connection's handshake completed.
	TopicConnected Topic = iota + 1
	// TopicDisconnected fires once when a connection has closed.
	TopicDisconnected
	// TopicMessageIn fires for every inbound data message, only when subscribed.
	TopicMessageIn
	// TopicMessageOut fires for every outbound data message, only when subscribed.
	TopicMessageOut
	// TopicError fires when an error is reported on a connection.
	TopicError
	// TopicHeartbeatSent fires when the heartbeat is sending a ping.
	TopicHeartbeatSent
	// TopicPongReceived fires when the heartbeat saw the answer to its ping.
	TopicPongReceived
	// TopicHeartbeatMissed fires when a ping went unanswered within the timeout.
	TopicHeartbeatMissed
	// TopicHeartbeatTimeout fires when the heartbeat declared a connection dead.
	TopicHeartbeatTimeout
	// TopicReconnectScheduled fires when a reconnect attempt was scheduled.
	TopicReconnectScheduled
	// TopicReconnectAttempt fires when a reconnect attempt starts dialing.
	TopicReconnectAttempt
	// TopicReconnected fires when a reconnect attempt succeeded.
	TopicReconnected
	// TopicGaveUp fires when reconnecting stopped for good.
	TopicGaveUp

	topicEnd // one past the last topic; keep last
)

var topicNames = [topicEnd]string{
	TopicConnected:    "tether.connected",
	TopicDisconnected: "tether.disconnected",
	TopicMessageIn:    "tether.message.in",
	TopicMessageOut:   "tether.message.out",
	TopicError:        "tether.error",

	TopicHeartbeatSent:    "tether.heartbeat.sent",
	TopicPongReceived:     "tether.heartbeat.pong",
	TopicHeartbeatMissed:  "tether.heartbeat.missed",
	TopicHeartbeatTimeout: "tether.heartbeat.timeout",

	TopicReconnectScheduled: "tether.reconnect.scheduled",
	TopicReconnectAttempt:   "tether.reconnect.attempt",
	TopicReconnected:        "tether.reconnect.done",
	TopicGaveUp:             "tether.reconnect.gaveup",
}

// String returns the topic's name, such as "tether.connected".
func (t Topic) String() string {
	if t == 0 || t >= topicEnd {
		return "tether.unknown"
	}
	return topicNames[t]
}

// Topics returns every topic, in declaration order.
func Topics() []Topic {
	ts := make([]Topic, 0, topicEnd-1)
	for t := Topic(1); t < topicEnd; t++ {
		ts = append(ts, t)
	}
	return ts
}

// Event is implemented by the payload structs of this package, and only by
// them: the set of topics is closed, so that a subscriber can rely on it.
type Event interface {
	// Topic returns the topic the event is published on.
	Topic() Topic
	isEvent()
}

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
// socket was released. Code and Reason are those of the close frame that
// ended it (sent or received); Code is ws.StatusAbnormalClosure (1006) when
// the connection was lost without a close frame.
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

// HeartbeatSent is published when the heartbeat is sending a ping on a
// connection, just before the write (which a close racing it may refuse).
// Seq counts the pings of that connection from 1.
type HeartbeatSent struct {
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

// HeartbeatMissed is published when a ping went unanswered within the
// heartbeat's timeout. Missed counts consecutive misses from 1; when it
// exceeds the tolerated count, HeartbeatTimeout follows.
type HeartbeatMissed struct {
	ConnID string
	Seq    uint64 // the ping that went unanswered
	Missed int
	At     time.Time
}

// HeartbeatTimeout is published when the heartbeat declared a connection
// dead, just before it closes it. Err matches heartbeat.ErrTimeout. The
// connection's Disconnected follows.
type HeartbeatTimeout struct {
	ConnID string
	Missed int
	Err    error
	At     time.Time
}

// ReconnectScheduled is published when a client lost its connection (or
// an attempt failed) and will try again after Delay. Attempt counts from 1
// since the last successful connection; Cause is why the previous
// connection or attempt ended.
type ReconnectScheduled struct {
	ClientID string
	Attempt  int
	Delay    time.Duration
	Cause    error
	At       time.Time
}

// ReconnectAttempt is published when a scheduled attempt starts dialing.
type ReconnectAttempt struct {
	ClientID string
	Attempt  int
	At       time.Time
}

// Reconnected is published when an attempt succeeded, after the connection's
// Connected and after the client's on-reconnect hook ran, before queued
// messages are flushed. Attempts is how many attempts it took; Downtime runs
// from the loss of the previous connection.
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

// Topic implements Event.
func (Connected) Topic() Topic { return TopicConnected }

// Topic implements Event.
func (Disconnected) Topic() Topic { return TopicDisconnected }

// Topic implements Event.
func (MessageIn) Topic() Topic { return TopicMessageIn }

// Topic implements Event.
func (MessageOut) Topic() Topic { return TopicMessageOut }

// Topic implements Event.
func (Error) Topic() Topic { return TopicError }

// Topic implements Event.
func (HeartbeatSent) Topic() Topic { return TopicHeartbeatSent }

// Topic implements Event.
func (PongReceived) Topic() Topic { return TopicPongReceived }

// Topic implements Event.
func (HeartbeatMissed) Topic() Topic { return TopicHeartbeatMissed }

// Topic implements Event.
func (HeartbeatTimeout) Topic() Topic { return TopicHeartbeatTimeout }

// Topic implements Event.
func (ReconnectScheduled) Topic() Topic { return TopicReconnectScheduled }

// Topic implements Event.
func (ReconnectAttempt) Topic() Topic { return TopicReconnectAttempt }

// Topic implements Event.
func (Reconnected) Topic() Topic { return TopicReconnected }

// Topic implements Event.
func (GaveUp) Topic() Topic { return TopicGaveUp }

func (Connected) isEvent()    {}
func (Disconnected) isEvent() {}
func (MessageIn) isEvent()    {}
func (MessageOut) isEvent()   {}
func (Error) isEvent()        {}

func (HeartbeatSent) isEvent()      {}
func (PongReceived) isEvent()       {}
func (HeartbeatMissed) isEvent()    {}
func (HeartbeatTimeout) isEvent()   {}
func (ReconnectScheduled) isEvent() {}
func (ReconnectAttempt) isEvent()   {}
func (Reconnected) isEvent()        {}
func (GaveUp) isEvent()             {}
