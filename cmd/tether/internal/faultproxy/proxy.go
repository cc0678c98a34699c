// Package faultproxy is a TCP proxy for loopback tests and demos that
// injects the faults a WebSocket client meets in the wild: a dropped
// connection, a black hole (a half-open connection that swallows
// everything), and a server that refuses handshakes.
package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from its own address to a target address.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	pairs  map[*pair]struct{}
	refuse int // HTTP status new connections are answered with; 0 forwards
	closed bool
	wg     sync.WaitGroup
}

type pair struct {
	client, server net.Conn
	hole           atomic.Bool // swallow bytes both ways
}

// New listens on 127.0.0.1 (a free port) and forwards to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, pairs: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		refuse := p.refuse
		p.wg.Add(1)
		p.mu.Unlock()
		if refuse != 0 {
			go p.refuseConn(c, refuse)
			continue
		}
		go p.forward(c)
	}
}

// refuseConn reads the client's request, then answers with status and
// closes: a handshake refused by the server.
func (p *Proxy) refuseConn(c net.Conn, status int) {
	defer p.wg.Done()
	defer c.Close()
	// wall time: a bound on a real socket, so that a client that never sends its request cannot hold the proxy.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
		_ = req.Body.Close()
	}
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, http.StatusText(status))
}

func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	pr := &pair{client: c, server: s}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = c.Close()
		_ = s.Close()
		return
	}
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); pr.pipe(s, c) }()
	go func() { defer copies.Done(); pr.pipe(c, s) }()
	copies.Wait()
	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
}

// pipe copies src to dst until either fails, dropping bytes while the
// pair is a black hole; then it closes both sides.
func (pr *pair) pipe(dst, src net.Conn) {
	defer func() { _ = pr.client.Close(); _ = pr.server.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pr.hole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Drop closes every forwarded connection at once, both sides, without a
// WebSocket close frame: the peers see the connection lost (1006). It
// returns how many were dropped.
func (p *Proxy) Drop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		_ = pr.client.Close()
		_ = pr.server.Close()
	}
	return len(p.pairs)
}

// BlackHole makes every forwarded connection swallow what either side
// sends, while both sockets stay open: a half-open connection, which only
// a heartbeat can detect. New connections are not affected. It returns how
// many connections it affected.
func (p *Proxy) BlackHole() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.hole.Store(true)
	}
	return len(p.pairs)
}

// Refuse makes the proxy answer new connections with the HTTP status
// (503, for example) instead of forwarding them; 0 forwards again.
// Connections already forwarded are not affected.
func (p *Proxy) Refuse(status int) {
	p.mu.Lock()
	p.refuse = status
	p.mu.Unlock()
}

// Live returns how many connections are being forwarded.
func (p *Proxy) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// Close stops listening, drops every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("faultproxy: already closed")
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Drop()
	p.wg.Wait()
	return err
}
