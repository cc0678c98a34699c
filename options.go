package tether

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// Option configures tether. Options are applied in order; a later option
// overrides an earlier one, except the middleware and plugin options, which
// append.
type Option func(*settings)

type settings struct {
	cfg         core.Config
	errs        []error
	client      clientSettings                 // used by Dial only
	checkOrigin func(origin, host string) bool // used by servers only
}

func (s *settings) fail(format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf("%w: "+format, append([]any{core.ErrInvalidConfig}, args...)...))
}

// NewConfig applies opts to a zero core.Config and returns it: the
// configuration that every connection, plugin and middleware built from the
// same options shares, with one clock and one bus. An invalid option makes
// it return an error matching core.ErrInvalidConfig.
func NewConfig(opts ...Option) (core.Config, error) {
	s, err := newSettings(opts)
	if err != nil {
		return core.Config{}, err
	}
	return s.cfg, nil
}

func newSettings(opts []Option) (*settings, error) {
	s := &settings{client: defaultClientSettings()}
	for _, o := range opts {
		if o == nil {
			s.fail("nil Option")
			continue
		}
		o(s)
	}
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	if s.cfg.Clock == nil {
		s.cfg.Clock = clockwork.NewRealClock()
	}
	return s, nil
}

// WithClock sets the clock every timing reads: close handshakes, the
// heartbeat, and a Client's reconnect backoff. Tests pass a clockwork.FakeClock.
// Default: the real clock.
func WithClock(c clockwork.Clock) Option {
	return func(s *settings) {
		if c == nil {
			s.fail("WithClock(nil)")
			return
		}
		s.cfg.Clock = c
	}
}

// WithBus sets the bus connections and plugins publish their events on.
// Default: none; nothing is published.
func WithBus(b *events.Bus) Option {
	return func(s *settings) {
		if b == nil {
			s.fail("WithBus(nil)")
			return
		}
		s.cfg.Bus = b
	}
}

// WithHandler sets the handler that receives every inbound message.
func WithHandler(h core.Handler) Option {
	return func(s *settings) {
		if h == nil {
			s.fail("WithHandler(nil)")
			return
		}
		s.cfg.Handler = h
	}
}

// WithCheckOrigin decides, on a server (Handler, NewServer, Upgrade),
// whether a browser's cross-origin request may connect; see
// core.Upgrader.CheckOrigin. Default: same-origin only. Pass
// core.AllowAnyOrigin only for servers no browser holding credentials will
// reach. Dial ignores it.
func WithCheckOrigin(fn func(origin, host string) bool) Option {
	return func(s *settings) {
		if fn == nil {
			s.fail("WithCheckOrigin(nil)")
			return
		}
		s.checkOrigin = fn
	}
}

// WithMiddleware appends middlewares to the inbound chain; the first one
// ever added is the outermost.
func WithMiddleware(mws ...core.Middleware) Option {
	return func(s *settings) { s.cfg.Inbound = s.cfg.Inbound.Append(mws...) }
}

// WithOutboundMiddleware appends middlewares to the outbound chain; the
// first one ever added is the outermost.
func WithOutboundMiddleware(mws ...core.Middleware) Option {
	return func(s *settings) { s.cfg.Outbound = s.cfg.Outbound.Append(mws...) }
}

// WithPlugin appends plugins; they run in order when a connection starts.
func WithPlugin(ps ...core.Plugin) Option {
	return func(s *settings) {
		for _, p := range ps {
			if p == nil {
				s.fail("WithPlugin(nil)")
				return
			}
		}
		s.cfg.Plugins = append(s.cfg.Plugins[:len(s.cfg.Plugins):len(s.cfg.Plugins)], ps...)
	}
}

// WithHeartbeat adds the heartbeat plugin configured by cfg (see package
// heartbeat; the zero Config pings every 30 s and declares the peer dead
// after 10 s without an answer). On a client, a heartbeat timeout is a
// reason to reconnect. A later WithHeartbeat replaces an earlier one. An
// invalid cfg is reported by the function that takes the options.
func WithHeartbeat(cfg heartbeat.Config) Option {
	return func(s *settings) {
		hb, err := heartbeat.New(cfg)
		if err != nil {
			s.errs = append(s.errs, err)
			return
		}
		plugins := slices.Clone(s.cfg.Plugins)
		if i := slices.IndexFunc(plugins, func(p core.Plugin) bool { _, ok := p.(*heartbeat.Heartbeat); return ok }); i >= 0 {
			plugins[i] = hb // a second WithHeartbeat replaces the first: one heartbeat per connection
		} else {
			plugins = append(plugins, hb)
		}
		s.cfg.Plugins = plugins
	}
}

// WithMaxMessageSize bounds inbound messages (default 16 MiB). n must be
// positive.
func WithMaxMessageSize(n int64) Option {
	return func(s *settings) {
		if n <= 0 {
			s.fail("WithMaxMessageSize(%d): must be positive", n)
			return
		}
		s.cfg.MaxMessageSize = n
	}
}

// WithCloseTimeout bounds the close handshake (default 5 s). d must be
// positive.
func WithCloseTimeout(d time.Duration) Option {
	return func(s *settings) {
		if d <= 0 {
			s.fail("WithCloseTimeout(%v): must be positive", d)
			return
		}
		s.cfg.CloseTimeout = d
	}
}
