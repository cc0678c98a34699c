package tethertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
)

// ErrServerClosed is returned by Server.DialContext after Close.
var ErrServerClosed = errors.New("tethertest: server closed")

// URL is the address every Server answers: its host never resolves, so a
// client that forgot Server.DialOption fails instead of reaching a real
// network.
const URL = "ws://tethertest.invalid/ws"

// Stats counts what a Server's network carried.
type Stats struct {
	Dials     int // transports opened by DialContext
	Accepted  int // handshakes accepted
	Refused   int // handshakes refused by Refuse
	Failed    int // handshakes that failed otherwise
	Live      int // server connections not yet done
	ToServer  int // bytes delivered toward the server
	ToClient  int // bytes delivered toward the client
	Swallowed int // bytes a black hole swallowed, both ways
}

// network is the fault state shared by every pipe of a Server.
type network struct {
	clock clockwork.Clock

	mu      sync.Mutex
	hole    Direction
	delay   time.Duration
	pipes   map[*pipe]struct{}
	stats   Stats
	closing bool

	gen     atomic.Uint64 // bumped on every change a Settle waits on
	watcher *Clock        // told of every change; nil unless the clock is a *Clock
}

func (n *network) changed() {
	n.gen.Add(1)
	if n.watcher != nil {
		n.watcher.signal()
	}
}

func (n *network) route(d Direction) (hole bool, delay time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hole&d != 0, n.delay
}

func (n *network) count(d Direction, bytes int, swallowed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case swallowed:
		n.stats.Swallowed += bytes
	case d == ToServer:
		n.stats.ToServer += bytes
	default:
		n.stats.ToClient += bytes
	}
}

func (n *network) forget(p *pipe) {
	n.mu.Lock()
	delete(n.pipes, p)
	n.mu.Unlock()
	n.changed()
}

func (n *network) snapshot() []*pipe {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps := make([]*pipe, 0, len(n.pipes))
	for p := range n.pipes {
		ps = append(ps, p)
	}
	return ps
}

// Server is an in-memory WebSocket server for tests, as
// net/http/httptest.Server is for HTTP: real WebSocket frames, tether's
// own server stack, and no port. Clients reach it with DialOption. Its
// network can be broken at any moment: Drop, BlackHole, Delay, CloseAll,
// Refuse.
//
// Every timing of the server, including Delay, reads the clock given with
// tether.WithClock, so a test on a clockwork.FakeClock controls the network
// too. Inside a testing/synctest bubble, the default real clock is the
// bubble's.
type Server struct {
	net *network
	up  core.Upgrader

	mu      sync.Mutex
	refuse  int // status; 0 accepts
	refuseN int // handshakes left to refuse; <0: until Accept
	conns   []*core.Conn
	handles map[*core.Conn]*core.Handle // for Abort, through the server's own plugin
	arrived chan struct{}               // signalled on each accepted connection
	closed  bool

	inbox chan core.Frame // messages the default handler received
	wg    sync.WaitGroup  // accept and serve goroutines
}

// NewServer starts an in-memory server whose connections are configured by
// opts, as tether.NewServer's are (WithClock, WithBus, WithHandler,
// WithMiddleware, WithHeartbeat, ...). Without WithHandler the server
// answers the recipe: a text "ping" gets "pong", protocol pings get pongs,
// and every other message is echoed and can be read with Next (up to 4096
// unread messages are kept; beyond that, new ones are dropped, so that a
// test that never calls Next cannot stall the server).
//
// Origins are not checked: the in-memory client is no browser. Close the
// server when the test ends.
func NewServer(opts ...tether.ServerOption) (*Server, error) {
	up, err := tether.ServerUpgrader(opts...)
	if err != nil {
		return nil, err
	}
	cfg := up.Config
	s := &Server{
		net:     &network{clock: cfg.Clock, pipes: map[*pipe]struct{}{}},
		arrived: make(chan struct{}, 1),
		inbox:   make(chan core.Frame, 4096),
		handles: map[*core.Conn]*core.Handle{},
	}
	plugins := []core.Plugin{core.PluginFunc(s.attach)}
	if cfg.Handler == nil {
		responder, err := heartbeat.Responder(heartbeat.Config{Mode: heartbeat.Text})
		if err != nil {
			return nil, err
		}
		cfg.Handler = s.echo
		plugins = append(plugins, responder)
	}
	cfg.Plugins = append(plugins, cfg.Plugins...)
	s.up = core.Upgrader{Config: cfg, CheckOrigin: core.AllowAnyOrigin, Protocols: up.Protocols}
	if c, ok := cfg.Clock.(*Clock); ok {
		s.net.watcher = c
		c.watchServer(s)
		c.Watch(cfg.Bus)
	}
	return s, nil
}

// attach is the server's own plugin: it keeps each connection's handle, to
// abort the connection when the server closes.
func (s *Server) attach(h *core.Handle) error {
	c := h.Conn()
	s.mu.Lock()
	s.handles[c] = h
	s.mu.Unlock()
	return h.OnClose(func() {
		s.mu.Lock()
		delete(s.handles, c)
		s.mu.Unlock()
	})
}

// abort ends c at once, as a server that died would.
func (s *Server) abort(c *core.Conn) {
	s.mu.Lock()
	h := s.handles[c]
	s.mu.Unlock()
	if h != nil {
		_ = h.Abort(ErrServerClosed)
	}
}

// echo is the default handler: it keeps a copy for Next and echoes.
func (s *Server) echo(ctx context.Context, f core.Frame) error {
	cp := core.Frame{Op: f.Op, Payload: append([]byte(nil), f.Payload...)}
	select {
	case s.inbox <- cp:
	default: // a test that never calls Next must not stall the server
	}
	return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
}

// Next returns the next message the default handler received, in order.
// A message already received is returned even when ctx is done.
func (s *Server) Next(ctx context.Context) (core.Frame, error) {
	select {
	case f := <-s.inbox:
		return f, nil
	default:
	}
	select {
	case f := <-s.inbox:
		return f, nil
	case <-ctx.Done():
		return core.Frame{}, ctx.Err()
	}
}

// URL returns the URL to dial: see the constant URL.
func (s *Server) URL() string { return URL }

// DialOption is the option that makes a tether.Client dial this server
// instead of the network: tether.WithNetDial(s.DialContext).
func (s *Server) DialOption() tether.DialOption { return tether.WithNetDial(s.DialContext) }

// DialContext opens an in-memory transport to the server, whatever addr
// says, and starts the server's side of the handshake. It has the
// signature of net.Dialer.DialContext.
func (s *Server) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := s.net
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: "memory", Err: ErrServerClosed}
	}
	p := newPipe(n)
	p.handshaking = true
	n.pipes[p] = struct{}{}
	n.stats.Dials++
	s.wg.Add(1)
	n.mu.Unlock()
	go s.serve(p.ends[1])
	n.changed()
	return p.ends[0], nil
}

// serve answers one handshake and serves the connection.
func (s *Server) serve(nc *endpoint) {
	defer s.wg.Done()
	defer s.net.changed()
	s.mu.Lock()
	status := 0
	if s.refuse != 0 && s.refuseN != 0 {
		status = s.refuse
		if s.refuseN > 0 {
			s.refuseN--
		}
	}
	s.mu.Unlock()
	if status != 0 {
		s.refuseHandshake(nc, status)
		return
	}
	c, err := s.up.Accept(nc)
	if err != nil {
		s.net.mu.Lock()
		s.net.stats.Failed++
		s.net.mu.Unlock()
		nc.p.handshakeDone()
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.p.handshakeDone()
		s.abort(c)
		return
	}
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	s.net.mu.Lock()
	s.net.stats.Accepted++
	s.net.mu.Unlock()
	nc.p.handshakeDone()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	_ = c.Serve(context.Background())
	s.mu.Lock()
	for i, x := range s.conns {
		if x == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

// refuseHandshake reads the client's request and answers with status.
func (s *Server) refuseHandshake(nc *endpoint, status int) {
	defer nc.Close()
	defer nc.p.handshakeDone()
	if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
		return
	}
	fmt.Fprintf(nc, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, http.StatusText(status))
	s.net.mu.Lock()
	s.net.stats.Refused++
	s.net.mu.Unlock()
}

// Refuse makes the next n handshakes fail with the HTTP status (503, 401,
// ...); n < 0 refuses every handshake until Accept. Connections already
// open are not touched.
func (s *Server) Refuse(status, n int) error {
	if status < 400 || status > 599 {
		return fmt.Errorf("tethertest: Refuse status %d is not an HTTP error status (400-599)", status)
	}
	s.mu.Lock()
	s.refuse, s.refuseN = status, n
	s.mu.Unlock()
	return nil
}

// Accept undoes Refuse: handshakes succeed again.
func (s *Server) Accept() {
	s.mu.Lock()
	s.refuse, s.refuseN = 0, 0
	s.mu.Unlock()
}

// Drop resets every open transport, as a network path that died: both
// sides fail at once (a client sees 1006) and what was in flight is lost.
func (s *Server) Drop() {
	for _, p := range s.net.snapshot() {
		p.drop()
	}
}

// BlackHole makes the network swallow every byte sent in dir, on open
// and future transports alike, while writers see success: the silent,
// half-open connection a heartbeat exists to detect. BlackHole(0) heals
// the network; bytes swallowed meanwhile stay lost.
func (s *Server) BlackHole(dir Direction) {
	s.net.mu.Lock()
	s.net.hole = dir & Both
	s.net.mu.Unlock()
	for _, p := range s.net.snapshot() { // a writer blocked on a full buffer now writes into the hole
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	s.net.changed()
}

// Delay makes every byte written from now on readable by the other side d
// later on the server's clock, in both directions, on open and future
// transports. Delay(0) removes it. Negative d is treated as 0.
func (s *Server) Delay(d time.Duration) {
	s.net.mu.Lock()
	s.net.delay = max(d, 0)
	s.net.mu.Unlock()
}

// CloseAll starts the close handshake with code and reason on every open
// server connection and returns without waiting for it.
func (s *Server) CloseAll(code ws.StatusCode, reason string) {
	for _, c := range s.Conns() {
		_ = c.Close(code, reason) // starts the handshake, returns
	}
}

// Conns returns the server's open connections.
func (s *Server) Conns() []*core.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []*core.Conn
	for _, c := range s.conns {
		select {
		case <-c.Done():
		default:
			live = append(live, c)
		}
	}
	return live
}

// WaitConns waits until the server has at least n open connections.
func (s *Server) WaitConns(ctx context.Context, n int) error {
	for len(s.Conns()) < n {
		select {
		case <-s.arrived:
		case <-ctx.Done():
			return fmt.Errorf("tethertest: waiting for %d connections, have %d: %w", n, len(s.Conns()), ctx.Err())
		}
	}
	return nil
}

// Stats returns what the server's network carried so far.
func (s *Server) Stats() Stats {
	live := len(s.Conns())
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	st := s.net.stats
	st.Live = live
	return st
}

// Close refuses new dials, resets every transport and waits for the
// server's goroutines to end. Clients see their connection drop.
func (s *Server) Close() error {
	s.net.mu.Lock()
	s.net.closing = true
	s.net.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Drop()
	for _, c := range s.Conns() {
		s.abort(c)
	}
	s.wg.Wait()
	return nil
}

// atRest reports whether nothing moves on the network without the clock.
func (s *Server) atRest() bool {
	now := s.net.clock.Now()
	for _, p := range s.net.snapshot() {
		if !p.atRest(now) {
			return false
		}
	}
	return true
}
