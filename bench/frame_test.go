package bench

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/tetherws/tether/core"
)

var frameSizes = []int{16, 1024, 16 << 10}

func sizeName(n int) string {
	if n >= 1024 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// cpuNow returns the CPU time (user + system) this process used so far.
// The machine is shared: wall time per op moves with the neighbours' load,
// CPU time per op much less.
func cpuNow() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// cpuTimer reports cpu-ns/op: the process's CPU time over the timed part
// divided by b.N. Start it right after ResetTimer, stop it before
// StopTimer.
type cpuTimer struct{ start int64 }

func startCPU() cpuTimer { return cpuTimer{cpuNow()} }

func (c cpuTimer) report(b *testing.B, ops int) {
	b.ReportMetric(float64(cpuNow()-c.start)/float64(max(ops, 1)), "cpu-ns/op")
}

// BenchmarkFrame_ServerEcho_InMemory: a server reads a masked frame and
// echoes it, over an in-memory connection that serves the same frames to
// every peer (no syscalls): the per-frame CPU and allocations of each
// library's server path.
func BenchmarkFrame_ServerEcho_InMemory(b *testing.B) {
	for _, size := range frameSizes {
		for _, p := range serverPeers(false) {
			b.Run("size="+sizeName(size)+"/peer="+p.name, func(b *testing.B) { benchServerEchoMem(b, p, size) })
		}
	}
}

func benchServerEchoMem(b *testing.B, p peer, size int) {
	mc := newServerMemConn(size, b.N)
	done := make(chan struct{})
	go func() { defer close(done); p.serveConn(mc) }()
	select {
	case <-mc.upgraded:
	case <-done: // a tether.Server returns once upgraded: done may come first
		select {
		case <-mc.upgraded:
		default:
			b.Fatal("handshake failed")
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	mc.start()
	<-done        // the serving function returned
	<-mc.closedCh // and the connection is over (a tether.Server serves on a goroutine of its own)
	cpu.report(b, b.N)
	b.StopTimer()
	if got, want := mc.nwritten.Load(), int64(b.N)*int64(size); got < want {
		b.Fatalf("echoed %d bytes, want at least %d", got, want)
	}
}

// clientPeer dials over nc and returns an echo loop that reads server
// frames and writes each back, masked, until the connection fails.
type clientPeer struct {
	name string
	dial func(ctx context.Context, nc net.Conn) (loop func(), err error)
}

func clientPeers() []clientPeer {
	return []clientPeer{
		{nRaw, func(ctx context.Context, nc net.Conn) (func(), error) {
			d := ws.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
			conn, br, _, err := d.Dial(ctx, "ws://mem/")
			if err != nil {
				return nil, err
			}
			if br == nil {
				br = bufio.NewReaderSize(conn, 4096)
			}
			return func() {
				bw := bufio.NewWriterSize(conn, 4096)
				hbuf := make([]byte, ws.MaxHeaderSize)
				payload := make([]byte, 16<<10)
				for {
					h, err := ws.ReadHeaderBuffer(br, hbuf)
					if err != nil {
						return
					}
					p := payload[:h.Length]
					if _, err := io.ReadFull(br, p); err != nil {
						return
					}
					h.Masked, h.Mask = true, ws.NewMask()
					ws.Cipher(p, h.Mask, 0)
					if ws.WriteHeaderBuffer(bw, h, hbuf) != nil {
						return
					}
					if _, err := bw.Write(p); err != nil {
						return
					}
					if br.Buffered() == 0 && bw.Flush() != nil {
						return
					}
				}
			}, nil
		}},
		{nWsutil, func(ctx context.Context, nc net.Conn) (func(), error) {
			d := ws.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
			conn, br, _, err := d.Dial(ctx, "ws://mem/")
			if err != nil {
				return nil, err
			}
			if br != nil {
				ws.PutReader(br)
			}
			return func() {
				for {
					msg, op, err := wsutil.ReadServerData(conn)
					if err != nil {
						return
					}
					if wsutil.WriteClientMessage(conn, op, msg) != nil {
						return
					}
				}
			}, nil
		}},
		{nGorilla, func(ctx context.Context, nc net.Conn) (func(), error) {
			d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
			c, _, err := d.DialContext(ctx, "ws://mem/", nil)
			if err != nil {
				return nil, err
			}
			return func() {
				for {
					mt, p, err := c.ReadMessage()
					if err != nil {
						return
					}
					if c.WriteMessage(mt, p) != nil {
						return
					}
				}
			}, nil
		}},
		{nCoder, func(ctx context.Context, nc net.Conn) (func(), error) {
			hc := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}}
			c, _, err := coder.Dial(ctx, "ws://mem/", &coder.DialOptions{HTTPClient: hc})
			if err != nil {
				return nil, err
			}
			c.SetReadLimit(1 << 20)
			return func() {
				defer c.CloseNow()
				for {
					typ, p, err := c.Read(ctx)
					if err != nil {
						return
					}
					if c.Write(ctx, typ, p) != nil {
						return
					}
				}
			}, nil
		}},
		{nGws, func(ctx context.Context, nc net.Conn) (func(), error) {
			c, _, err := gws.NewClientFromConn(&gwsEcho{}, &gws.ClientOption{Addr: "ws://mem/"}, nc)
			if err != nil {
				return nil, err
			}
			return c.ReadLoop, nil
		}},
		{nTether, func(ctx context.Context, nc net.Conn) (func(), error) {
			d := core.Dialer{Config: core.Config{Handler: echoHandler}, NetDial: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
			c, err := d.Dial(ctx, "ws://mem/")
			if err != nil {
				return nil, err
			}
			return func() { _ = c.Serve(ctx) }, nil
		}},
	}
}

// BenchmarkFrame_ClientEcho_InMemory: the client side of the same echo: a
// client reads an unmasked server frame and writes it back masked (a new
// mask per frame, as RFC 6455 requires), in memory.
func BenchmarkFrame_ClientEcho_InMemory(b *testing.B) {
	for _, size := range frameSizes {
		for _, p := range clientPeers() {
			b.Run("size="+sizeName(size)+"/peer="+p.name, func(b *testing.B) {
				mc := newClientMemConn(size, b.N)
				loop, err := p.dial(context.Background(), mc)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				cpu := startCPU()
				mc.start()
				loop()
				cpu.report(b, b.N)
				b.StopTimer()
				if got, want := mc.nwritten.Load(), int64(b.N)*int64(size); got < want {
					b.Fatalf("echoed %d bytes, want at least %d", got, want)
				}
			})
		}
	}
}
