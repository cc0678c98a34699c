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
//   - heartbeat and retry (plugins, coming next): ping every 30 s and
//     declare a silent peer dead; reconnect after 1, 2, 4, 8, 16 s.
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
// On the server side, Handler serves every upgraded connection on its
// request's goroutine, which becomes the connection's only reader.
package tether
