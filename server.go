package tether

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// ErrServerClosed is returned by Server.Shutdown when called twice, and
// answered (as HTTP 503) to requests that arrive after Shutdown began.
var ErrServerClosed = errors.New("tether: server shut down")

// Upgrade answers an HTTP request with the WebSocket handshake and returns
// the connection, configured by opts and not yet reading: call Serve. On
// failure the HTTP error response has been written. Same-origin browser
// requests only unless WithCheckOrigin says otherwise (see
// core.Upgrader.CheckOrigin); use NewServer or a core.Upgrader for more
// control.
func Upgrade(w http.ResponseWriter, r *http.Request, opts ...Option) (*core.Conn, error) {
	s, err := newSettings(opts)
	if err != nil {
		http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
		return nil, err
	}
	up := core.Upgrader{Config: s.cfg, CheckOrigin: s.checkOrigin}
	return up.Upgrade(w, r)
}

// Handler returns NewServer(opts...) as an http.Handler, for servers that
// never shut down their WebSocket connections on their own. opts are
// checked once, here; an invalid option returns an error instead of a
// handler.
func Handler(opts ...Option) (http.Handler, error) {
	s, err := NewServer(opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
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
	wg     sync.WaitGroup // one per connection served
}

// NewServer returns a Server whose connections are configured by opts
// (WithHandler, WithMiddleware, WithHeartbeat, WithClock, WithBus,
// WithCheckOrigin, ...). An invalid option returns an error matching
// core.ErrInvalidConfig.
func NewServer(opts ...Option) (*Server, error) {
	st, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	return &Server{up: core.Upgrader{Config: st.cfg, CheckOrigin: st.checkOrigin}, conns: map[*core.Conn]struct{}{}}, nil
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

// Shutdown stops accepting connections (later requests get 503), closes
// every connection with code and reason (1001 "going away" is the usual
// code for a restart: a tether Client reconnects), and waits until each
// has ended, or until ctx is done, whichever comes first. Each close is
// bounded by the close timeout on the server's clock. It returns ctx's
// error if ctx ended first, ErrServerClosed if Shutdown was called before.
func (s *Server) Shutdown(ctx context.Context, code ws.StatusCode, reason string) error {
	if err := core.CheckClose(code, reason); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.closed = true
	conns := make([]*core.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		go func() { _ = c.Close(code, reason) }()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tether: shutdown with %d connections still closing: %w", len(s.Conns()), ctx.Err())
	}
}
