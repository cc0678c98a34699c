package tether

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// Options come in three kinds, so that an option meant for one side does
// not compile on the other:
//
//   - Option configures the connections of either side: WithClock,
//     WithBus, WithHandler, WithMiddleware, WithHeartbeat, ... Dial and
//     NewServer both take it.
//   - DialOption configures a Client: WithRetry, WithSendBuffer,
//     WithHeader, ... Only Dial takes it.
//   - ServerOption configures a Server: WithCheckOrigin, ... Only
//     NewServer takes it.
//
// Options are applied in order; a later option overrides an earlier one,
// except WithMiddleware, WithOutboundMiddleware and WithPlugin, which
// append. An invalid option makes Dial or NewServer return an error
// matching core.ErrInvalidConfig (ErrInvalidConfig here).
type Option interface {
	DialOption
	ServerOption
}

// DialOption configures a Client; see Option.
type DialOption interface {
	applyDial(*dialSettings)
}

// ServerOption configures a Server; see Option.
type ServerOption interface {
	applyServer(*serverSettings)
}

// connSettings is what both sides share: one core.Config (one clock, one
// bus) and the heartbeat.
type connSettings struct {
	cfg       core.Config
	heartbeat *heartbeat.Heartbeat // nil: the default
	noBeat    bool                 // WithoutHeartbeat
	errs      []error
}

func (s *connSettings) fail(format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf("%w: "+format, append([]any{core.ErrInvalidConfig}, args...)...))
}

// build returns the connections' Config: defaults filled in, the
// heartbeat first among the plugins (on by default, on both sides).
func (s *connSettings) build() (core.Config, error) {
	if len(s.errs) > 0 {
		return core.Config{}, errors.Join(s.errs...)
	}
	cfg := s.cfg
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	// Both sides run handlers on goroutines tether started (a Server's per
	// connection, a Client's read loops): a panic there would end the
	// process, where net/http would have recovered it. It closes that
	// connection with 1011 instead, and is logged.
	cfg.OnPanic = logPanic
	if !s.noBeat {
		hb := s.heartbeat
		if hb == nil {
			var err error
			if hb, err = heartbeat.New(heartbeat.Config{}); err != nil {
				return core.Config{}, err
			}
		}
		cfg.Plugins = append([]core.Plugin{hb}, cfg.Plugins...)
	}
	return cfg, nil
}

// logPanic logs a panic the read loop recovered (core.Config.OnPanic) on
// slog.Default, as net/http logs a handler's.
func logPanic(c *core.Conn, v any, stack []byte) {
	slog.Default().Error("tether: handler panicked; closing the connection with 1011", "conn", c.ID(), "panic", fmt.Sprint(v), "stack", string(stack))
}

// connOption is an Option: it applies to both sides.
type connOption func(*connSettings)

func (o connOption) applyDial(s *dialSettings)     { o(&s.conn) }
func (o connOption) applyServer(s *serverSettings) { o(&s.conn) }

// WithClock sets the clock every timing reads: close handshakes, the
// heartbeat, and a Client's reconnect backoff. Tests pass a
// clockwork.FakeClock. Default: the real clock.
func WithClock(c clockwork.Clock) Option {
	return connOption(func(s *connSettings) {
		if c == nil {
			s.fail("WithClock(nil)")
			return
		}
		s.cfg.Clock = c
	})
}

// WithBus sets the bus connections, plugins and clients publish their
// events on. Default: none; nothing is published.
func WithBus(b *events.Bus) Option {
	return connOption(func(s *connSettings) {
		if b == nil {
			s.fail("WithBus(nil)")
			return
		}
		s.cfg.Bus = b
	})
}

// WithHandler sets the handler that receives every inbound message. The
// frame's payload is valid until the handler returns. A handler replies
// with FromContext(ctx).Write(ctx, ...), and ends its connection by
// returning an error (see core.Handler for the close code it gets). A
// panic in the handler or a middleware closes that connection with 1011
// and is logged on slog.Default; it does not end the process.
func WithHandler(h Handler) Option {
	return connOption(func(s *connSettings) {
		if h == nil {
			s.fail("WithHandler(nil)")
			return
		}
		s.cfg.Handler = h
	})
}

// WithMiddleware appends middlewares to the inbound chain; the first one
// ever added is the outermost.
func WithMiddleware(mws ...Middleware) Option {
	return connOption(func(s *connSettings) { s.cfg.Inbound = s.cfg.Inbound.Append(mws...) })
}

// WithOutboundMiddleware appends middlewares to the outbound chain; the
// first one ever added is the outermost.
func WithOutboundMiddleware(mws ...Middleware) Option {
	return connOption(func(s *connSettings) { s.cfg.Outbound = s.cfg.Outbound.Append(mws...) })
}

// WithPlugin appends plugins; they attach to every connection, in order,
// after the heartbeat. A *heartbeat.Heartbeat given here is taken as
// WithHeartbeat would take it: it replaces the heartbeat, first among the
// plugins, and a later WithHeartbeat or WithoutHeartbeat replaces it.
func WithPlugin(ps ...Plugin) Option {
	return connOption(func(s *connSettings) {
		for _, p := range ps {
			if p == nil {
				s.fail("WithPlugin(nil)")
				return
			}
		}
		for _, p := range ps {
			if hb, ok := p.(*heartbeat.Heartbeat); ok {
				s.heartbeat, s.noBeat = hb, false
				continue
			}
			s.cfg.Plugins = append(slices.Clip(s.cfg.Plugins), p)
		}
	})
}

// WithHeartbeat configures the heartbeat, which is on by default on both
// sides with the zero heartbeat.Config: a protocol ping every 30 s, the
// peer declared dead after 10 s without an answer. On a Client, a
// heartbeat timeout is a reason to reconnect. A later WithHeartbeat or
// WithoutHeartbeat replaces an earlier one. An invalid cfg is reported by
// Dial or NewServer.
func WithHeartbeat(cfg heartbeat.Config) Option {
	return connOption(func(s *connSettings) {
		hb, err := heartbeat.New(cfg)
		if err != nil {
			s.errs = append(s.errs, err)
			return
		}
		s.heartbeat, s.noBeat = hb, false
	})
}

// WithoutHeartbeat turns the heartbeat off: no pings, and a silent peer is
// never declared dead (the connection then ends only when the network says
// so, which for a black-holed peer may be never).
func WithoutHeartbeat() Option {
	return connOption(func(s *connSettings) { s.heartbeat, s.noBeat = nil, true })
}

// WithMaxMessageSize bounds inbound messages (default 16 MiB); a bigger
// one closes the connection with 1009. n must be positive.
func WithMaxMessageSize(n int64) Option {
	return connOption(func(s *connSettings) {
		if n <= 0 {
			s.fail("WithMaxMessageSize(%d): must be positive", n)
			return
		}
		s.cfg.MaxMessageSize = n
	})
}

// WithCloseTimeout bounds the close handshake (default 5 s) on the clock.
// d must be positive.
func WithCloseTimeout(d time.Duration) Option {
	return connOption(func(s *connSettings) {
		if d <= 0 {
			s.fail("WithCloseTimeout(%v): must be positive", d)
			return
		}
		s.cfg.CloseTimeout = d
	})
}
