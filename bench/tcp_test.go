package bench

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
)

// server is one peer listening on loopback.
type server struct {
	addr  string
	ln    net.Listener
	hs    *http.Server
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// trackListener records every accepted conn, so that stop can close the
// hijacked ones net/http no longer knows.
type trackListener struct {
	net.Listener
	s *server
}

func (l trackListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns[nc] = struct{}{}
		l.s.mu.Unlock()
	}
	return nc, err
}

// startServer serves p on 127.0.0.1: through net/http if p is an http
// handler, else from its own accept loop, one goroutine per connection.
func startServer(tb testing.TB, p peer) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &server{addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	s.ln = trackListener{ln, s}
	if p.handler != nil {
		s.hs = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.wg.Add(1)
			defer s.wg.Done()
			p.handler.ServeHTTP(w, r)
		})}
		go func() { _ = s.hs.Serve(s.ln) }()
		return s
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); p.serveConn(nc) }()
		}
	}()
	return s
}

// startTCPEcho is the physical floor: a server that writes back whatever
// it reads, no WebSocket at all.
func startTCPEcho(tb testing.TB) *server {
	return startServer(tb, peer{name: nTCP, conn: func(nc net.Conn) {
		defer nc.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			if _, err := nc.Write(buf[:n]); err != nil {
				return
			}
		}
	}})
}

func (s *server) stop() {
	if s.hs != nil {
		_ = s.hs.Close()
	} else {
		_ = s.ln.Close()
	}
	s.mu.Lock()
	for nc := range s.conns {
		_ = nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// client is the one client every server is measured with: gobwas/ws's
// low-level API, a pre-encoded masked frame written with one Write, the
// echo read with ReadHeader and ReadFull. raw is set against the TCP floor:
// no handshake, and the reply is the frame's bytes verbatim.
type client struct {
	nc    net.Conn
	br    *bufio.Reader
	raw   bool
	frame []byte // one masked frame
	batch []byte // frames written at once by pipelined
	buf   []byte
	hbuf  []byte
}

func dialClient(ctx context.Context, addr string, raw bool, size int) (*client, error) {
	c := &client{raw: raw, frame: mustFrame(size, true), buf: make([]byte, 64<<10), hbuf: make([]byte, ws.MaxHeaderSize)}
	if raw {
		nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		c.nc, c.br = nc, bufio.NewReaderSize(nc, 4096)
		return c, nil
	}
	nc, br, _, err := ws.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, 4096)
	}
	c.nc, c.br = nc, br
	return c, nil
}

// echo sends one frame and waits for its echo.
func (c *client) echo() error {
	if _, err := c.nc.Write(c.frame); err != nil {
		return err
	}
	return c.readEcho()
}

func (c *client) readEcho() error {
	if c.raw {
		_, err := io.ReadFull(c.br, c.buf[:len(c.frame)])
		return err
	}
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hbuf)
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(c.br, c.buf[:h.Length]); err != nil {
			return err
		}
		switch h.OpCode {
		case ws.OpBinary:
			return nil
		case ws.OpClose:
			return errors.New("server closed")
		}
	}
}

// pipelined writes n frames at once, then reads n echoes.
func (c *client) pipelined(n int) error {
	if len(c.batch) != n*len(c.frame) {
		c.batch = c.batch[:0]
		for range n {
			c.batch = append(c.batch, c.frame...)
		}
	}
	if _, err := c.nc.Write(c.batch); err != nil {
		return err
	}
	for range n {
		if err := c.readEcho(); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) close() { _ = c.nc.Close() }

// answerPings answers the server's pings until the connection ends: an
// idle client that is alive.
func (c *client) answerPings() {
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hbuf)
		if err != nil {
			return
		}
		p := c.buf[:h.Length]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return
		}
		if h.OpCode == ws.OpPing {
			if ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewPongFrame(p))) != nil {
				return
			}
		}
	}
}

// tcpPeers: every server peer (no heartbeat), plus the raw TCP floor.
func tcpPeers(withWsutil bool) []peer {
	var out []peer
	for _, p := range serverPeers(false) {
		if p.name == nWsutil && !withWsutil {
			continue // its helpers read a header with several small reads: a syscall each
		}
		out = append(out, p)
	}
	return out
}

func start(b *testing.B, p peer) *server {
	if p.name == nTCP {
		return startTCPEcho(b)
	}
	return startServer(b, p)
}

// BenchmarkEcho_RTT: one client, one frame in flight, over loopback TCP:
// latency per round trip. raw-tcp echoes the same bytes without WebSocket.
func BenchmarkEcho_RTT(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, p := range append([]peer{{name: nTCP}}, tcpPeers(true)...) {
			b.Run("size="+sizeName(size)+"/peer="+p.name, func(b *testing.B) {
				s := start(b, p)
				defer s.stop()
				c, err := dialClient(context.Background(), s.addr, p.name == nTCP, size)
				if err != nil {
					b.Fatal(err)
				}
				defer c.close()
				if err := c.echo(); err != nil { // warm up: the server's goroutine is running
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := startCPU()
				for range b.N {
					if err := c.echo(); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b, b.N)
			})
		}
	}
}

// BenchmarkEcho_Conns: c clients at once, each with one 128-byte frame in
// flight, over loopback: ns/op is per echo across all of them (lower is
// more throughput).
func BenchmarkEcho_Conns(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, p := range append([]peer{{name: nTCP}}, tcpPeers(false)...) {
			b.Run("conns=c"+strconv.Itoa(n)+"/peer="+p.name, func(b *testing.B) {
				s := start(b, p)
				defer s.stop()
				clients := make([]*client, n)
				for i := range clients {
					c, err := dialClient(context.Background(), s.addr, p.name == nTCP, 128)
					if err != nil {
						b.Fatal(err)
					}
					defer c.close()
					if err := c.echo(); err != nil {
						b.Fatal(err)
					}
					clients[i] = c
				}
				var left atomic.Int64
				left.Store(int64(b.N))
				var wg sync.WaitGroup
				errs := make(chan error, n)
				b.ReportAllocs()
				b.ResetTimer()
				cpu := startCPU()
				for _, c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for left.Add(-1) >= 0 {
							if err := c.echo(); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				cpu.report(b, b.N)
				b.StopTimer()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkEcho_Pipelined64: one client writes 64 frames of 128 B at once,
// then reads the 64 echoes, over loopback: ns/op is per frame. A server
// that flushes once per batch makes one write where one that flushes per
// frame makes 64.
func BenchmarkEcho_Pipelined64(b *testing.B) {
	const batch = 64
	for _, p := range append([]peer{{name: nTCP}}, tcpPeers(false)...) {
		b.Run("peer="+p.name, func(b *testing.B) {
			s := start(b, p)
			defer s.stop()
			c, err := dialClient(context.Background(), s.addr, p.name == nTCP, 128)
			if err != nil {
				b.Fatal(err)
			}
			defer c.close()
			if err := c.pipelined(batch); err != nil {
				b.Fatal(err)
			}
			rounds := (b.N + batch - 1) / batch
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for range rounds {
				if err := c.pipelined(batch); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, b.N)
		})
	}
}
