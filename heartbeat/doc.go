// Package heartbeat detects dead peers: a core.Plugin that pings the peer
// every Interval on the connection's clock, watches for the answer, and
// aborts the connection with an error matching ErrTimeout when none comes
// within Timeout.
//
// It works on either side of a connection, in one of two wire modes:
//
//   - Protocol (the default): RFC 6455 ping and pong control frames. Every
//     conforming peer, browsers included, answers by itself.
//   - Text: application messages, "ping" and "pong" by default, as the
//     widely copied browser recipe uses them; the payloads and the way
//     messages are recognised are configurable (JSON heartbeats). The
//     plugin consumes heartbeat messages, answers the peer's pings, and
//     never lets either reach the application's handler.
//
// Each connection costs one timer on the clock, re-armed at every step,
// and no goroutine: the timer's callback runs only when it fires. In
// protocol mode nothing is added to the frame path; with AnyFrame,
// liveness is the connection's frame counter (core.Conn.TrackActivity),
// never a clock read. The plugin stops with the connection: its
// timer is stopped when the close starts, and it never pings a connection
// that is closing.
//
// Events (events.HeartbeatSent, PongReceived, HeartbeatMissed,
// HeartbeatTimeout) are published on the connection's bus, before its
// Disconnected.
//
// Responder is the server-side half of the text recipe: an inbound
// middleware that answers "ping" with "pong", so that the browser recipe
// works unchanged against a tether server.
package heartbeat
