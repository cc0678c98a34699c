package core

import (
	"bufio"
	"context"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/internal/memconn"
)

func newMemConn(payload int, n, batch int) *memconn.Frames {
	return memconn.NewFrames(nil, payload, n, batch)
}

var benchSizes = []int{16, 1024, 16 << 10}

func sizeName(n int) string {
	if n >= 1024 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// BenchmarkServerEcho: a server reads a masked frame and echoes it, over
// an in-memory connection. raw-gobwas is the floor: ws.ReadHeaderBuffer,
// io.ReadFull, ws.Cipher, ws.WriteHeaderBuffer and a flush per frame, with
// every buffer reused. tether runs the same frames through a Conn's read
// loop, inbound chain, handler and writer. "pipelined" serves 64 frames
// per read, and reports socket writes per frame: the flush coalescing.
func BenchmarkServerEcho(b *testing.B) {
	for _, mode := range []struct {
		name  string
		batch int
	}{{"rr", 1}, {"pipelined64", 64}} {
		for _, size := range benchSizes {
			b.Run(mode.name+"/"+sizeName(size)+"/raw-gobwas", func(b *testing.B) {
				benchRawEcho(b, size, mode.batch)
			})
			b.Run(mode.name+"/"+sizeName(size)+"/tether", func(b *testing.B) {
				benchTetherEcho(b, size, mode.batch, Chain{})
			})
			b.Run(mode.name+"/"+sizeName(size)+"/tether-3mw", func(b *testing.B) {
				benchTetherEcho(b, size, mode.batch, NewChain(passThrough(), passThrough(), passThrough()))
			})
		}
	}
}

func benchRawEcho(b *testing.B, size, batch int) {
	mc := newMemConn(size, b.N, batch)
	br := bufio.NewReaderSize(mc, DefaultReadBufferSize)
	bw := bufio.NewWriterSize(mc, DefaultWriteBufferSize)
	hbuf := make([]byte, ws.MaxHeaderSize)
	payload := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h, err := ws.ReadHeaderBuffer(br, hbuf)
		if err != nil {
			b.Fatal(err)
		}
		p := payload[:h.Length]
		if _, err := io.ReadFull(br, p); err != nil {
			b.Fatal(err)
		}
		ws.Cipher(p, h.Mask, 0)
		h.Masked = false
		if err := ws.WriteHeaderBuffer(bw, h, hbuf); err != nil {
			b.Fatal(err)
		}
		if _, err := bw.Write(p); err != nil {
			b.Fatal(err)
		}
		if batch == 1 || br.Buffered() == 0 { // the raw floor coalesces too when pipelined
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	_ = bw.Flush()
	b.StopTimer()
	b.ReportMetric(float64(mc.Writes())/float64(b.N), "writes/frame")
}

func benchTetherEcho(b *testing.B, size, batch int, chain Chain) {
	mc := newMemConn(size, b.N, batch)
	cfg, _ := Config{Inbound: chain}.withDefaults()
	var c *Conn
	cfg.Handler = func(ctx context.Context, f Frame) error {
		return c.Write(ctx, f.Op, f.Payload)
	}
	c, _ = newConn(mc, nil, nil, false, "", cfg)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	_ = c.Serve(context.Background()) // returns at io.EOF after b.N frames
	b.StopTimer()
	if got, want := mc.Written(), int64(b.N)*int64(size); got < want {
		b.Fatalf("echoed %d bytes, want at least %d", got, want)
	}
	b.ReportMetric(float64(mc.Writes())/float64(b.N), "writes/frame")
}

func passThrough() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, f Frame) error { return next(ctx, f) }
	}
}

// BenchmarkChain: a frame through 5 pass-through middlewares costs 5
// function calls and no allocation.
func BenchmarkChain(b *testing.B) {
	for _, n := range []int{0, 5} {
		b.Run(strconv.Itoa(n)+"-middlewares", func(b *testing.B) {
			mws := make([]Middleware, n)
			for i := range mws {
				mws[i] = passThrough()
			}
			var sink int
			h := NewChain(mws...).Then(func(_ context.Context, f Frame) error {
				sink += len(f.Payload)
				return nil
			})
			ctx := context.Background()
			f := Frame{Op: ws.OpBinary, Payload: make([]byte, 16)}
			b.ReportAllocs()
			for b.Loop() {
				if err := h(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
			_ = sink
		})
	}
}

// The chain allocates nothing per frame: asserted, not only measured.
func TestChainAllocatesNothingPerFrame(t *testing.T) {
	h := NewChain(passThrough(), passThrough(), passThrough(), passThrough(), passThrough()).
		Then(func(context.Context, Frame) error { return nil })
	ctx := context.Background()
	f := Frame{Op: ws.OpBinary, Payload: make([]byte, 16)}
	if a := testing.AllocsPerRun(1000, func() { _ = h(ctx, f) }); a != 0 {
		t.Fatalf("%v allocations per frame through 5 middlewares", a)
	}
}

// The read and write paths allocate nothing per frame in steady state:
// 10,000 echoed frames cost only Serve's fixed setup (contexts, the final
// close), whatever the payload size.
func TestEchoAllocatesNothingPerFrame(t *testing.T) {
	const frames = 10000
	for _, size := range benchSizes {
		mc := newMemConn(size, frames, 1)
		cfg, _ := Config{}.withDefaults()
		var c *Conn
		cfg.Handler = func(ctx context.Context, f Frame) error { return c.Write(ctx, f.Op, f.Payload) }
		c, _ = newConn(mc, nil, nil, false, "", cfg)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_ = c.Serve(context.Background())
		runtime.ReadMemStats(&after)
		if n := after.Mallocs - before.Mallocs; n > 100 {
			t.Errorf("%s: %d allocations for %d frames", sizeName(size), n, frames)
		}
		if got := mc.Written(); got < frames*int64(size) {
			t.Errorf("%s: echoed %d bytes", sizeName(size), got)
		}
	}
}
