package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
)

// BenchmarkLiveness_PerFrame: what liveness tracking adds to a frame: a
// 16-byte in-memory server echo, tether bare, with a protocol heartbeat
// (pongs go to a control handler; data frames never meet the plugin) and
// with AnyFrame (every inbound frame counts as a sign of life: one atomic
// add, no clock read). The interval never passes during the run.
func BenchmarkLiveness_PerFrame(b *testing.B) {
	for _, v := range []struct {
		name string
		hb   *heartbeat.Config
	}{{"bare", nil}, {"heartbeat", &heartbeat.Config{Interval: time.Hour}}, {"anyframe", &heartbeat.Config{Interval: time.Hour, AnyFrame: true}}} {
		opts := []tether.ServerOption{tether.WithHandler(echoHandler), tether.WithoutHeartbeat()}
		if v.hb != nil {
			opts[1] = tether.WithHeartbeat(*v.hb)
		}
		h, err := tether.NewServer(opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("peer="+v.name, func(b *testing.B) { benchServerEchoMem(b, peer{name: v.name, handler: h}, 16) })
	}
}

// BenchmarkHeartbeat_Round: one heartbeat round (the ping timer fires, the
// ping is written, the peer's pong is read and matched) over 100k
// in-memory connections, each on its own fake clock so that the clocks'
// bookkeeping does not grow with N. Reported per round and per connection.
// Run with -benchtime 3x: each iteration is a whole round.
func BenchmarkHeartbeat_Round(b *testing.B) {
	const n = 100000
	b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
		const every = 30 * time.Second
		hb, err := heartbeat.New(heartbeat.Config{Interval: every, Timeout: every})
		if err != nil {
			b.Fatal(err)
		}
		clocks := make([]*clockwork.FakeClock, n)
		conns := make([]*core.Conn, n)
		handles := make([]*core.Handle, n) // to abort them at the end: a close would wait on the fake clock
		var wg sync.WaitGroup
		defer func() {
			for _, h := range handles {
				if h != nil {
					_ = h.Abort(nil)
				}
			}
			wg.Wait()
		}()
		for i := range n {
			clocks[i] = clockwork.NewFakeClock()
			keep := core.PluginFunc(func(h *core.Handle) error { handles[i] = h; return nil })
			up := &core.Upgrader{Config: core.Config{Clock: clocks[i], Plugins: []core.Plugin{hb, keep}, ReadBufferSize: 256, WriteBufferSize: 256}}
			c, err := up.Accept(newPongConn())
			if err != nil {
				b.Fatal(err)
			}
			conns[i] = c
			wg.Add(1)
			go func() { defer wg.Done(); _ = c.Serve(context.Background()) }()
		}
		ctx := context.Background()
		for _, cl := range clocks {
			_ = cl.BlockUntilContext(ctx, 1) // the heartbeat armed its timer
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
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
		cpu.report(b, b.N)
		b.StopTimer()
		perRound := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(perRound/1e6, "ms/round")
		b.ReportMetric(perRound/n, "ns/conn-round")
	})
}

// pongConn is the server side of an in-memory connection to a peer that
// sends a handshake request and then answers every ping with a pong. Read
// blocks until there is something to read.
type pongConn struct {
	mu      sync.Mutex
	cond    sync.Cond
	in      []byte
	upgrade bool
	closed  bool
}

var pongFrame = func() []byte {
	b, _ := ws.CompileFrame(ws.MaskFrame(ws.NewPongFrame(nil)))
	return b
}()

func newPongConn() *pongConn {
	p := &pongConn{in: append([]byte{}, upgradeRequest...)}
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
	if !p.upgrade { // the 101 response
		p.upgrade = true
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

func (p *pongConn) LocalAddr() net.Addr              { return memAddr{} }
func (p *pongConn) RemoteAddr() net.Addr             { return memAddr{} }
func (p *pongConn) SetDeadline(time.Time) error      { return nil }
func (p *pongConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pongConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkEvent_PublishNoSubscriber: a publish nobody listens to, as the
// connection does it (Enabled first) and unguarded.
func BenchmarkEvent_PublishNoSubscriber(b *testing.B) {
	bus := events.NewBus()
	e := events.Connected{ConnID: "c1"}
	b.Run("guarded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if events.Enabled[events.Connected](bus) {
				events.Publish(bus, e)
			}
		}
	})
	b.Run("publish", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			events.Publish(bus, e)
		}
	})
}
