package heartbeat_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/internal/memconn"
)

// BenchmarkEcho: a server echoes 16-byte binary frames over an in-memory
// connection: bare; with a protocol heartbeat; with AnyFrame (which turns
// on the connection's frame counter, one atomic add per frame); and with a
// text heartbeat (whose filter looks at every inbound message). The
// interval never passes during the run: what differs is the cost on the
// frame path.
func BenchmarkEcho(b *testing.B) {
	hb, err := heartbeat.New(heartbeat.Config{Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	anyFrame, err := heartbeat.New(heartbeat.Config{AnyFrame: true, Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	text, err := heartbeat.New(heartbeat.Config{Mode: heartbeat.Text, Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		plugins []core.Plugin
	}{{"bare", nil}, {"heartbeat", []core.Plugin{hb}}, {"heartbeat-anyframe", []core.Plugin{anyFrame}}, {"heartbeat-text", []core.Plugin{text}}} {
		b.Run(bc.name, func(b *testing.B) {
			mc := memconn.NewFrames(memconn.UpgradeRequest, 16, b.N, 1)
			up := &core.Upgrader{Config: core.Config{Plugins: bc.plugins, Handler: func(ctx context.Context, f core.Frame) error {
				return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
			}}}
			c, err := up.Accept(mc)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			_ = c.Serve(context.Background()) // returns at io.EOF after b.N frames
			b.StopTimer()
			if mc.Written() < int64(b.N)*18 {
				b.Fatalf("echoed %d bytes for %d frames", mc.Written(), b.N)
			}
		})
	}
}

// BenchmarkRound: one heartbeat round (a ping timer fires, the ping is
// written, the peer's pong is read and matched, the timeout passes) over N
// connections at once, in memory, each on its own fake clock so that the
// clocks' bookkeeping does not grow with N. Reported per connection and
// per round. Run with -benchtime=3x: each iteration is a whole round.
func BenchmarkRound(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) { benchRound(b, n) })
	}
}

func benchRound(b *testing.B, n int) {
	const every = 30 * time.Second
	hb, err := heartbeat.New(heartbeat.Config{Interval: every, Timeout: every}) // the timeout check and the next ping share a timer event
	if err != nil {
		b.Fatal(err)
	}
	clocks := make([]*clockwork.FakeClock, n)
	conns := make([]*core.Conn, n)
	peers := make([]*pongConn, n)
	var wg sync.WaitGroup
	for i := range n {
		clocks[i] = clockwork.NewFakeClock()
		up := &core.Upgrader{Config: core.Config{Clock: clocks[i], Plugins: []core.Plugin{hb}, ReadBufferSize: 256, WriteBufferSize: 256}}
		peers[i] = newPongConn()
		c, err := up.Accept(peers[i])
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Serve(context.Background()) }()
	}
	defer func() {
		for _, p := range peers { // the socket ends: each read loop returns
			_ = p.Close()
		}
		wg.Wait()
	}()
	ctx := context.Background()
	for _, cl := range clocks {
		_ = cl.BlockUntilContext(ctx, 1)
	}
	b.ResetTimer()
	for r := 1; r <= b.N; r++ {
		for _, cl := range clocks {
			cl.Advance(every)
		}
		for _, c := range conns { // wait until every pong of this round was matched
			for {
				st, _ := heartbeat.StatsOf(c)
				if st.Answered >= uint64(r) {
					break
				}
				if st.Missed > 0 || c.Err() != nil {
					b.Fatalf("round %d: %+v %v", r, st, c.Err())
				}
				runtime.Gosched()
			}
		}
	}
	b.StopTimer()
	perRound := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perRound/1e6, "ms/round")
	b.ReportMetric(perRound/float64(n), "ns/conn-round")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIdle: the memory and goroutines a heartbeat adds to an idle
// connection (real clock, timer armed, nothing due), the difference between
// N connections with and without it.
func BenchmarkIdle(b *testing.B) {
	const n = 10000
	hb, err := heartbeat.New(heartbeat.Config{})
	if err != nil {
		b.Fatal(err)
	}
	measure := func(plugins []core.Plugin) (heap uint64, goroutines int, stop func()) {
		peers := make([]*pongConn, n)
		var hellos atomic.Int64
		hello := func(context.Context, core.Frame) error { hellos.Add(1); return nil }
		var wg sync.WaitGroup
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		for i := range n {
			up := &core.Upgrader{Config: core.Config{Plugins: plugins, Handler: hello}}
			peers[i] = newPongConn()
			c, err := up.Accept(peers[i])
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = c.Serve(context.Background()) }()
		}
		for hellos.Load() < n { // every read loop got its hello: every plugin ran
			runtime.Gosched()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		return after.HeapAlloc - before.HeapAlloc, runtime.NumGoroutine() - g0, func() {
			for _, p := range peers {
				_ = p.Close()
			}
			wg.Wait()
		}
	}
	for b.Loop() {
		bare, gBare, stop := measure(nil)
		stop()
		with, gWith, stop := measure([]core.Plugin{hb})
		stop()
		b.ReportMetric(float64(int64(with)-int64(bare))/n, "hb-B/conn")
		b.ReportMetric(float64(gWith-gBare)/n, "hb-goroutines/conn")
	}
}

// pongConn is the server side of an in-memory connection to a peer that
// sends a handshake request, then one text frame once it was accepted,
// then answers every ping
// with a pong. Read blocks until there is something to read.
type pongConn struct {
	mu      sync.Mutex
	cond    sync.Cond
	in      []byte // what Read serves next
	upgrade bool   // the handshake response was written
	closed  bool
}

var hello = func() []byte {
	b, _ := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte("hi"))))
	return b
}()

var pongFrame = func() []byte {
	b, _ := ws.CompileFrame(ws.MaskFrame(ws.NewPongFrame(nil)))
	return b
}()

func newPongConn() *pongConn {
	p := &pongConn{in: append([]byte{}, memconn.UpgradeRequest...)}
	p.cond.L = &p.mu
	return p
}

func (p *pongConn) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.in) == 0 && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return 0, io.EOF
	}
	n := copy(b, p.in)
	p.in = p.in[n:]
	return n, nil
}

func (p *pongConn) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	if !p.upgrade { // the 101 response: the peer says hello
		p.upgrade = true
		p.in = append(p.in, hello...)
		p.cond.Signal()
		return len(b), nil
	}
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return 0, err
		}
		if _, err := r.Seek(h.Length, io.SeekCurrent); err != nil {
			return 0, err
		}
		if h.OpCode == ws.OpPing {
			p.in = append(p.in, pongFrame...)
			p.cond.Signal()
		}
	}
	return len(b), nil
}

func (p *pongConn) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

func (p *pongConn) LocalAddr() net.Addr              { return memconn.Addr{} }
func (p *pongConn) RemoteAddr() net.Addr             { return memconn.Addr{} }
func (p *pongConn) SetDeadline(time.Time) error      { return nil }
func (p *pongConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pongConn) SetWriteDeadline(time.Time) error { return nil }
