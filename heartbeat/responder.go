package heartbeat

import (
	"context"
	"errors"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// Responder returns an inbound middleware that answers the peer's text
// pings with a pong and consumes them, so that the browser recipe (which
// sends "ping" and expects "pong") works unchanged against a tether server.
// cfg's text fields apply (PingPayload, PongPayload, Classify; defaults
// "ping" and "pong"), whatever its Mode; its timing fields are ignored.
// Pongs and every other message go on to the next handler.
//
// A connection that runs the Heartbeat plugin in text mode answers pings
// already; Responder is for a server that only answers.
func Responder(cfg Config) (core.Middleware, error) {
	ping, pong, err := textPayloads(cfg.PingPayload, cfg.PongPayload)
	if err != nil {
		return nil, err
	}
	cfg.PingPayload, cfg.PongPayload = ping, pong
	classify := classifier(cfg)
	return func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			if classify(f.Op, f.Payload) != Ping {
				return next(ctx, f)
			}
			c := core.FromContext(ctx)
			if c == nil {
				return next(ctx, f)
			}
			return answer(ctx, c, pong)
		}
	}, nil
}

// answer writes a text pong past the outbound chain. A connection that is
// closing needs no answer: that is not an error of the handler.
func answer(ctx context.Context, c *core.Conn, pong []byte) error {
	if err := c.WriteDirect(ctx, ws.OpText, pong); err != nil && !errors.Is(err, core.ErrClosed) {
		return err
	}
	return nil
}
