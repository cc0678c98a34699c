package middleware

import (
	"context"
	"log/slog"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// Direction labels the chain a Logging middleware sits on.
type Direction string

// The two chains.
const (
	Inbound  Direction = "in"
	Outbound Direction = "out"
)

// Logging logs every message passing through it with l: at Debug level the
// connection id, direction, opcode and size (never the payload, which may
// hold secrets); at Warn level any error the rest of the chain returned.
// When l has Debug disabled a message costs one Enabled call and no
// allocation. A nil l uses slog.Default().
func Logging(l *slog.Logger, dir Direction) core.Middleware {
	if l == nil {
		l = slog.Default()
	}
	return func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			err := next(ctx, f)
			switch {
			case err != nil && l.Enabled(ctx, slog.LevelWarn):
				l.LogAttrs(ctx, slog.LevelWarn, "tether message refused",
					slog.String("conn", connID(ctx)), slog.String("dir", string(dir)),
					slog.String("op", opName(f)), slog.Int("bytes", len(f.Payload)),
					slog.Any("err", err))
			case err == nil && l.Enabled(ctx, slog.LevelDebug):
				l.LogAttrs(ctx, slog.LevelDebug, "tether message",
					slog.String("conn", connID(ctx)), slog.String("dir", string(dir)),
					slog.String("op", opName(f)), slog.Int("bytes", len(f.Payload)))
			}
			return err
		}
	}
}

func connID(ctx context.Context) string {
	if c := core.FromContext(ctx); c != nil {
		return c.ID()
	}
	return ""
}

func opName(f core.Frame) string {
	switch f.Op {
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	}
	return "other"
}
