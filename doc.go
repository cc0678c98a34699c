// Package tether keeps WebSocket connections alive and brings them back.
//
// tether is built in layers, each usable on its own:
//
//   - core: a thin connection over github.com/gobwas/ws. One read loop per
//     connection runs every inbound message through a chain of middlewares;
//     one serialized writer carries data, ping, pong and close frames, so a
//     heartbeat can never interleave with a user's write. Bad input closes
//     the connection with the close code RFC 6455 calls for.
//   - middleware: ready-made members of the chain (Recover, Logging,
//     MaxSize).
//   - events: typed lifecycle events (connected, disconnected, messages,
//     errors) over github.com/asaskevich/EventBus, delivered in order, with
//     no deadlock when a handler publishes.
//   - heartbeat: a plugin that pings every 30 s and declares a silent peer
//     dead after 10 s, on either side.
//   - retry: backoff policies with jitter, and the reconnect loop, on the
//     injected clock: reconnect after 1, 2, 4, 8, 16 s.
//
// This package is the facade. Its options push ONE clock
// (github.com/jonboulle/clockwork) and ONE bus into every module, so that a
// program's timings can be tested in simulated time with
// clockwork.NewFakeClock and its lifecycle observed in one place:
//
//	bus := events.NewBus()
//	clock := clockwork.NewFakeClock()
//	cfg, err := tether.NewConfig(tether.WithClock(clock), tether.WithBus(bus),
//		tether.WithMiddleware(middleware.Recover()))
//
// On the server side, NewServer (or Handler) upgrades every request and
// serves the connection on a goroutine of its own, the connection's only
// reader; Server.Shutdown closes them all with a code and waits. Package
// tethertest tests either side in simulated time.
//
// On the client side, Dial returns a Client: a connection that survives
// reconnects. When its connection is lost for a reason worth retrying
// (Retryable), it reconnects on the retry policy's schedule, runs the
// on-reconnect hook, and sends what was queued meanwhile, in order:
//
//	c, err := tether.Dial(ctx, "wss://example.com/ws",
//		tether.WithHeartbeat(heartbeat.Config{}), // a heartbeat timeout is a reason to reconnect
//		tether.WithHandler(onMessage))
//	err = c.SendText(ctx, "hello")
//	err = c.Close(ws.StatusNormalClosure, "bye") // never reconnects
package tether
