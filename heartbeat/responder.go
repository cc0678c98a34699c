package heartbeat

import (
	"context"
	"errors"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// Responder returns a plugin that answers the peer's text pings with a pong
// and consumes them, so that the browser recipe (which sends "ping" and
// expects "pong") works unchanged against a tether server. cfg's text
// fields apply (PingPayload, PongPayload, Classify; defaults "ping" and
// "pong"), whatever its Mode; its timing fields are ignored. Pongs and every
// other message go on to the application. Like the heartbeat's own, the
// pong is written past the outbound middlewares and publishes no
// MessageOut event: it is not the application's traffic.
//
// A connection that runs the Heartbeat plugin in text mode answers pings
// already; Responder is for a server that only answers.
func Responder(cfg Config) (core.Plugin, error) {
	ping, pong, err := textPayloads(cfg.PingPayload, cfg.PongPayload)
	if err != nil {
		return nil, err
	}
	cfg.PingPayload, cfg.PongPayload = ping, pong
	return &responder{classify: classifier(cfg), pong: pong}, nil
}

type responder struct {
	classify func(ws.OpCode, []byte) Kind
	pong     []byte
}

var _ core.Plugin = (*responder)(nil)

// Attach installs the inbound filter.
func (r *responder) Attach(h *core.Handle) error {
	return h.UseInbound(func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			if r.classify(f.Op, f.Payload) != Ping {
				return next(ctx, f)
			}
			return answer(ctx, h, r.pong)
		}
	})
}

// answer writes a text pong past the outbound chain. A connection that is
// closing needs no answer: that is not an error of the handler.
func answer(ctx context.Context, h *core.Handle, pong []byte) error {
	if err := h.WriteDirect(ctx, ws.OpText, pong); err != nil && !errors.Is(err, core.ErrClosed) {
		return err
	}
	return nil
}
