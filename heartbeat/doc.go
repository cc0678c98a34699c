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
// The plugin attaches when the connection is created (Dial, Accept or
// Upgrade; see core.Plugin) and uses only what core.Handle offers any
// plugin: a control-frame hook or, in text mode, an inbound middleware;
// pings written past the outbound middlewares (Handle.Ping,
// Handle.WriteDirect), so that they are not the application's traffic and
// publish no MessageOut; Handle.Abort to end a dead connection; and
// core.Emit for its events.
//
// Each connection costs one timer on the clock, re-armed at every step,
// and no goroutine: the timer's callback runs only when it fires. In
// protocol mode nothing is added to the frame path; with AnyFrame,
// liveness is the connection's frame counter (Handle.CountFrames), never
// a clock read. The plugin stops with the connection: its timer is
// stopped when the close starts (Handle.OnClose), and it never pings a
// connection that is closing. StatsOf reads a connection's counters and
// its latest round-trip time.
//
// The heartbeat's events are this package's types: PingSent, PongReceived,
// PingMissed and Timeout, published on the connection's bus before its
// events.Disconnected. Subscribe to them with events.Subscribe, as to any
// event.
//
// Responder is the server-side half of the text recipe: a plugin that
// answers "ping" with "pong" (past the outbound middlewares, like the
// heartbeat's own pongs), so that the browser recipe works unchanged
// against a tether server.
package heartbeat
