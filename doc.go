// Package tether keeps WebSocket connections alive and brings them back.
//
// A minimal program needs only this package. A server is NewServer, an http.Handler
// that serves each connection on a goroutine of its own; its Shutdown
// closes them all with a code and waits:
//
//	srv, err := tether.NewServer(tether.WithHandler(func(ctx context.Context, f tether.Frame) error {
//		return tether.FromContext(ctx).Write(ctx, f.Op, f.Payload) // echo
//	}))
//	http.Handle("/ws", srv)
//	// ... and when the program stops:
//	err = srv.Shutdown(ctx, tether.StatusGoingAway, "restart")
//
// A client is Dial, which returns a Client: a connection that survives
// reconnects. When its connection is lost for a reason worth retrying
// (Retryable), it reconnects after 1, 2, 4, 8, 16 s, then gives up; after a
// reconnect it runs the on-reconnect hook, then sends what was queued
// meanwhile, in order:
//
//	c, err := tether.Dial(ctx, "wss://example.com/ws", tether.WithHandler(onMessage))
//	err = c.SendText(ctx, "hello")                           // queued while reconnecting
//	err = c.Shutdown(ctx, tether.StatusNormalClosure, "bye") // never reconnects; waits for the end
//
// On both sides the heartbeat is on by default: a ping every 30 s, and a
// peer that does not answer within 10 s is dead (on a Client, a reason to
// reconnect). WithHeartbeat configures it, WithoutHeartbeat turns it off.
//
// # Options
//
// Options come in three kinds, so that one meant for the other side does
// not compile: an Option (WithClock, WithBus, WithHandler, WithMiddleware,
// WithPlugin, WithHeartbeat, ...) configures the connections of either
// side; a DialOption (WithRetry, WithSendBuffer, WithOnReconnect, ...)
// only a Client; a ServerOption (WithCheckOrigin, ...) only a Server. They
// push ONE clock (github.com/jonboulle/clockwork) and ONE bus into every
// module, so that a program's timings can be tested in simulated time and
// its lifecycle observed in one place:
//
//	clock := clockwork.NewFakeClock()
//	bus := events.NewBus()
//	srv, err := tether.NewServer(tether.WithClock(clock), tether.WithBus(bus),
//		tether.WithMiddleware(middleware.Recover()))
//
// ServerUpgrader returns the core.Upgrader a Server would use, for a
// serving loop of one's own. Package tethertest tests either side in
// simulated time.
//
// # Plugins
//
// What the heartbeat and the reconnect plugin do, any package can do
// through the same public surface. A connection plugin (core.Plugin,
// WithPlugin) attaches to every connection when it is created and gets a
// core.Handle: control-frame hooks, inbound and outbound middlewares that
// sit between the wire and the application's chains, a frame counter,
// direct writes, per-connection values, and events of its own types. A
// reconnect plugin (core.Reconnector, WithReconnector) decides whether and
// when a Client dials again; retry.Reconnect is the default.
//
// # One supervisor per Client
//
// Each Client is one supervisor goroutine that moves through named states
// (State: Connecting, Flushing, Live, BackingOff, Closing, Closed): it
// dials, runs the hook, flushes the queue, waits for the connection's end
// and asks the reconnect plugin, one thing at a time, so one reconnect runs
// at a time. Each connection's read loop, where the handler runs, has a
// goroutine of its own. Every other call only talks to the supervisor:
// Send writes to the live connection or queues; Close starts closing and
// returns. Waiting is separate and bounded: Done, Shutdown(ctx, ...), and
// Reconnect(ctx), which forces a reconnect now and waits until a new
// connection is live.
//
// # Layers
//
// tether is built in layers, each usable on its own:
//
//   - core: a thin connection over github.com/gobwas/ws. One read loop per
//     connection runs every inbound message through a chain of middlewares;
//     one serialized writer carries data, ping, pong and close frames, so a
//     heartbeat can never interleave with a user's write. Bad input closes
//     the connection with the close code RFC 6455 calls for. The plugin
//     interfaces (Plugin and Handle, Reconnector and Schedule) are here.
//   - middleware: ready-made members of the chain (Recover, Logging,
//     MaxSize), and the PingLimit plugin.
//   - events: the bus over github.com/asaskevich/EventBus, open to any event
//     type (a third party's too), delivered in order, with no deadlock when
//     a handler publishes or unsubscribes; the events every connection has
//     (connected, disconnected, messages, errors).
//   - heartbeat: the connection plugin that pings and declares a silent peer
//     dead, with its events; Responder answers the browser recipe's text
//     pings.
//   - retry: backoff policies with jitter and a server's Retry-After, and
//     the reconnect plugin, on the injected clock, with its events.
package tether
