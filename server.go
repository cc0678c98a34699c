package tether

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// ErrServerClosed is returned by a second Server.Shutdown, and answered
// (as HTTP 503) to requests that arrive after Shutdown began.
var ErrServerClosed = errors.New("tether: server shut down")

type serverSettings struct {
	conn        connSettings
	checkOrigin func(origin, host string) bool
	protocols   []string
}

type serverOption func(*serverSettings)

func (o serverOption) applyServer(s *serverSettings) { o(s) }

// WithCheckOrigin decides whether a browser's cross-origin request may
// connect; see core.Upgrader.CheckOrigin. Default: same-origin only. Pass
// core.AllowAnyOrigin only for servers no browser holding credentials will
// reach.
func WithCheckOrigin(fn func(origin, host string) bool) ServerOption {
	return serverOption(func(s *serverSettings) {
		if fn == nil {
			s.conn.fail("WithCheckOrigin(nil)")
			return
		}
		s.checkOrigin = fn
	})
}

// WithAcceptSubprotocols sets the subprotocols the server speaks: the
// first one the client offers that is in this list is selected (the
// client's order of preference wins).
func WithAcceptSubprotocols(protocols ...string) ServerOption {
	return serverOption(func(s *serverSettings) { s.protocols = slices.Clone(protocols) })
}

func newServerSettings(opts []ServerOption) (*serverSettings, core.Config, error) {
	s := &serverSettings{}
	for _, o := range opts {
		if o == nil {
			s.conn.fail("nil ServerOption")
			continue
		}
		o.applyServer(s)
	}
	cfg, err := s.conn.build()
	return s, cfg, err
}

// ServerUpgrader returns the core.Upgrader that NewServer would use for
// opts, for programs that build their own serving loop on core (a custom
// listener, a raw net.Conn): the same connections, clock, bus, heartbeat
// and origin check. An invalid option returns an error matching
// ErrInvalidConfig.
func ServerUpgrader(opts ...ServerOption) (*core.Upgrader, error) {
	s, cfg, err := newServerSettings(opts)
	if err != nil {
		return nil, err
	}
	return &core.Upgrader{Config: cfg, CheckOrigin: s.checkOrigin, Protocols: s.protocols}, nil
}

// Server is an http.Handler that upgrades every request to a WebSocket
// connection configured by its options and serves it on a goroutine of its
// own until it closes; ServeHTTP returns once the connection is upgraded,
// and net/http's goroutine for the request ends. The connection's read
// loop thus waits for frames on a short stack (4 KiB) instead of under
// net/http's frames (8 KiB), which is most of what an idle connection
// costs. Still one goroutine per connection. The handlers' ctx carries the
// request context's values (context.WithoutCancel: net/http cancels it
// when ServeHTTP returns).
//
// http.Server.Shutdown does not see hijacked connections: call Shutdown
// here as well, to close the WebSocket connections with 1001 and wait for
// them.
type Server struct {
	up core.Upgrader

	mu     sync.Mutex
	conns  map[*core.Conn]struct{}
	closed bool
	ended  chan struct{}  // closed once every connection ended after Shutdown
	wg     sync.WaitGroup // one per connection served
}

// NewServer returns a Server whose connections are configured by opts
// (WithHandler, WithMiddleware, WithHeartbeat, WithClock, WithBus,
// WithCheckOrigin, ...). The heartbeat is on unless WithoutHeartbeat: a
// client that stops answering pings is dropped after 40 s at most. An
// invalid option returns an error matching ErrInvalidConfig.
func NewServer(opts ...ServerOption) (*Server, error) {
	up, err := ServerUpgrader(opts...)
	if err != nil {
		return nil, err
	}
	return &Server{up: *up, conns: map[*core.Conn]struct{}{}}, nil
}

// ServeHTTP upgrades the request and serves the connection on a goroutine
// of its own. After Shutdown began it answers 503.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.wg.Add(1) // before the upgrade: Shutdown waits for a handshake under way
	}
	s.mu.Unlock()
	if closed {
		http.Error(w, "websocket: server shutting down", http.StatusServiceUnavailable)
		return
	}
	c, err := s.up.Upgrade(w, r)
	if err != nil {
		s.wg.Done()
		return
	}
	s.mu.Lock()
	if s.closed { // Shutdown began during the handshake: serve it only to close it
		s.mu.Unlock()
		done, cancel := context.WithCancel(context.Background())
		cancel() // Serve closes a connection whose ctx is done with 1001, reading the peer's answer
		go func() { defer s.wg.Done(); _ = c.Serve(done) }()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	ctx := context.WithoutCancel(r.Context())
	go func() {
		defer s.wg.Done()
		_ = c.Serve(ctx)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// Conns returns the connections the server is serving now.
func (s *Server) Conns() []*core.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*core.Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Shutdown stops accepting connections (later requests get 503), starts
// closing every connection with code and reason (1001 "going away" is the
// usual code for a restart: a tether Client reconnects), and waits until
// each has ended, or until ctx is done, whichever comes first. Each close
// is bounded by the close timeout on the server's clock. It returns ctx's
// error if ctx ended first (the closes go on). A later Shutdown closes
// nothing more: it waits the same way and returns ErrServerClosed once the
// connections have ended.
func (s *Server) Shutdown(ctx context.Context, code ws.StatusCode, reason string) error {
	if err := core.CheckClose(code, reason); err != nil {
		return err
	}
	if ctx == nil {
		return fmt.Errorf("%w: nil context", core.ErrInvalidConfig)
	}
	s.mu.Lock()
	again := s.closed
	var conns []*core.Conn
	if !again {
		s.closed = true
		s.ended = make(chan struct{})
		conns = make([]*core.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		go func(ended chan struct{}) { s.wg.Wait(); close(ended) }(s.ended)
	}
	ended := s.ended
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(code, reason) // starts the close handshake; does not wait
	}
	select {
	case <-ended:
		if again {
			return ErrServerClosed
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tether: shutdown with %d connections still closing: %w", len(s.Conns()), ctx.Err())
	}
}
