package core_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
)

// Tests of a malicious peer: each attack is refused with the right close
// code or HTTP status, and what the victim holds in memory stays bounded.
// Figures are logged (go test -v -run Hostile ./core/) for docs/security.md.

// totalAlloc returns the bytes allocated by the process so far.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// frameWire returns the wire bytes of f.
func frameWire(t *testing.T, f ws.Frame) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// flood writes chunk to nc until a write fails or max bytes were written,
// and returns how many bytes were written.
func flood(nc net.Conn, first, chunk []byte, max int) <-chan int {
	done := make(chan int, 1)
	go func() {
		n, _ := nc.Write(first)
		for n < max {
			m, err := nc.Write(chunk)
			n += m
			if err != nil {
				break
			}
		}
		done <- n
	}()
	return done
}

// A peer that opens a fragmented message and sends continuation frames
// for ever: the server closes with 1009 once the message passes the limit,
// and its reassembly buffer never grew past the limit.
func TestHostileEndlessFragments(t *testing.T) {
	const limit = 1 << 20
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: limit}})
	first := frameWire(t, masked(ws.NewFrame(ws.OpBinary, false, make([]byte, 4096))))
	cont := frameWire(t, masked(ws.NewFrame(ws.OpContinuation, false, make([]byte, 4096))))
	before := totalAlloc()
	sent := flood(p.nc, first, cont, 64*limit)
	code, _ := p.readClose(t)
	err := waitErr(t, p.serve)
	allocated := totalAlloc() - before
	_ = p.nc.Close()
	n := <-sent
	if code != ws.StatusMessageTooBig || !errors.Is(err, core.ErrMessageTooBig) {
		t.Fatalf("close code %d, cause %v; want 1009 ErrMessageTooBig", code, err)
	}
	held := core.ReassemblyCap(p.srv)
	t.Logf("endless fragments: peer wrote %d bytes, limit %d; reassembly buffer cap %d; process allocated %d bytes meanwhile", n, limit, held, allocated)
	if held > limit {
		t.Fatalf("reassembly buffer grew to %d bytes, over the %d limit", held, limit)
	}
}

// Empty continuation frames cost no memory: a peer may send as many as it
// likes, the buffer stays empty, and the message that finally ends is
// delivered whole. (No fragment count limit: memory, not frames, is what
// the limit bounds.)
func TestHostileEmptyFragmentsHoldNothing(t *testing.T) {
	in := newInbox()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: 1024, Handler: in.handle}})
	var b bytes.Buffer
	b.Write(frameWire(t, masked(ws.NewFrame(ws.OpText, false, []byte("a")))))
	empty := frameWire(t, masked(ws.NewFrame(ws.OpContinuation, false, nil)))
	for range 100_000 {
		b.Write(empty)
	}
	b.Write(frameWire(t, masked(ws.NewFrame(ws.OpContinuation, true, []byte("z")))))
	if _, err := p.nc.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if f := in.next(t); string(f.Payload) != "az" {
		t.Fatalf("message %q, want \"az\"", f.Payload)
	}
	_ = p.nc.Close()
	waitErr(t, p.serve)
	if held := core.ReassemblyCap(p.srv); held > 64 {
		t.Fatalf("100k empty fragments left a %d-byte buffer", held)
	}
}

// One byte over the limit, in one frame, is refused with 1009 as soon as
// the header declares it: the server does not wait for (or read) the
// payload. With the default limit too (16 MiB).
func TestHostileMessageJustOverTheLimit(t *testing.T) {
	for _, limit := range []int64{0, 64 << 10} {
		want := limit
		if want == 0 {
			want = core.DefaultMaxMessageSize
		}
		t.Run(fmt.Sprint(want), func(t *testing.T) {
			p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: limit}})
			h := ws.Header{Fin: true, OpCode: ws.OpBinary, Length: want + 1, Masked: true, Mask: ws.NewMask()}
			if err := ws.WriteHeader(p.nc, h); err != nil { // the header only: no payload follows
				t.Fatal(err)
			}
			code, _ := p.readClose(t)
			err := waitErr(t, p.serve)
			if code != ws.StatusMessageTooBig || !errors.Is(err, core.ErrMessageTooBig) {
				t.Fatalf("close code %d, cause %v; want 1009", code, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%d bytes, limit %d", want+1, want)) {
				t.Fatalf("cause %q does not give size and limit", err)
			}
		})
	}
}

// A peer that floods pings: the server answers every ping, once and in
// order, and allocates nothing per ping. The pong is written on the read
// loop itself, through the one writer, with no queue: a peer that stops
// reading its pongs blocks that write, and with it the reading of further
// pings, so the flood waits in the kernel's socket buffers, not in the
// server's memory (a stuck writer is released by Close: TestCloseUnblocksStuckWriter).
// A flood is not refused: a ping costs its pong, as RFC 6455 requires.
func TestHostilePingFlood(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	const pings = 20_000
	var b bytes.Buffer
	for i := range pings {
		payload := fmt.Appendf(make([]byte, 0, 125), "%08d%s", i, bytes.Repeat([]byte{'p'}, 117))
		b.Write(frameWire(t, masked(ws.NewPingFrame(payload))))
	}
	before := totalAlloc()
	wrote := make(chan error, 1)
	go func() { _, err := p.nc.Write(b.Bytes()); wrote <- err }()
	// Read every pong, in order, into one buffer: the reading side
	// allocates nothing, so what is allocated is the server's doing.
	pong := make([]byte, 2+125)
	want := make([]byte, 0, 8)
	for i := range pings {
		if _, err := io.ReadFull(p.br, pong); err != nil {
			t.Fatalf("pong %d: %v", i, err)
		}
		want = strconv.AppendInt(want[:0], int64(i+100_000_000), 10)[1:]
		if pong[0] != 0x80|byte(ws.OpPong) || pong[1] != 125 || !bytes.Equal(pong[2:10], want) {
			t.Fatalf("frame %d: % x %q", i, pong[:2], pong[2:10])
		}
	}
	allocated := totalAlloc() - before
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	t.Logf("ping flood: %d pings of 125 bytes (%d bytes) answered in order; process allocated %d bytes meanwhile (%.1f per ping)",
		pings, b.Len(), allocated, float64(allocated)/pings)
	if allocated > 64<<10 {
		t.Fatalf("answering %d bytes of pings allocated %d bytes", b.Len(), allocated)
	}
	if err := p.srv.Err(); err != nil {
		t.Fatalf("the flood closed the connection: %v", err)
	}
}

// A close frame from the server with a code that may not be sent, or a
// reason that is not UTF-8, is a violation on the client side too.
func TestHostileServerCloseFrames(t *testing.T) {
	body := func(code uint16, reason string) []byte {
		return append([]byte{byte(code >> 8), byte(code)}, reason...)
	}
	for _, tc := range []struct {
		name string
		body []byte
		code ws.StatusCode
		is   error
	}{
		{"code 1005", body(1005, ""), ws.StatusProtocolError, core.ErrProtocol},
		{"code 1006", body(1006, ""), ws.StatusProtocolError, core.ErrProtocol},
		{"code 1015", body(1015, ""), ws.StatusProtocolError, core.ErrProtocol},
		{"code 2999", body(2999, ""), ws.StatusProtocolError, core.ErrProtocol},
		{"code 5000", body(5000, ""), ws.StatusProtocolError, core.ErrProtocol},
		{"one byte", []byte{3}, ws.StatusProtocolError, core.ErrProtocol},
		{"reason not UTF-8", body(1000, "ok\xc3"), ws.StatusInvalidFramePayloadData, core.ErrInvalidUTF8},
		{"reason a surrogate", body(1000, "\xed\xa0\x80"), ws.StatusInvalidFramePayloadData, core.ErrInvalidUTF8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			peerGot := make(chan ws.StatusCode, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					peerGot <- 0
					return
				}
				defer nc.Close()
				if _, err := ws.Upgrade(nc); err != nil {
					peerGot <- 0
					return
				}
				_ = ws.WriteFrame(nc, ws.NewCloseFrame(tc.body))
				f, err := ws.ReadFrame(nc)
				if err != nil || f.Header.OpCode != ws.OpClose {
					peerGot <- 0
					return
				}
				code, _ := ws.ParseCloseFrameData(ws.UnmaskFrameInPlace(f).Payload)
				peerGot <- code
			}()
			c, err := core.Dial(testCtx(t), "ws://"+ln.Addr().String()+"/", core.Config{})
			if err != nil {
				t.Fatal(err)
			}
			err = waitErr(t, served(c))
			if ce := asClose(t, err); ce.Code != tc.code || ce.Remote || !errors.Is(err, tc.is) {
				t.Fatalf("client cause %v, want local %d", err, tc.code)
			}
			if got := <-peerGot; got != tc.code {
				t.Fatalf("the server got close code %d, want %d", got, tc.code)
			}
		})
	}
}

// waitFor yields until cond holds: for progress that needs no timer, only
// other goroutines to run. The test context bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		if ctx.Err() != nil {
			t.Fatal("the condition never held")
		}
		runtime.Gosched()
	}
}

// countingConn counts the bytes read from it.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// acceptOne accepts one connection on a fresh listener with up, wrapping
// the server's socket to count what it reads. It returns the address, the
// counter and Accept's error.
func acceptOne(t *testing.T, up *core.Upgrader) (string, *countingConn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cc := &countingConn{}
	res := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(ready)
			res <- err
			return
		}
		cc.Conn = nc
		close(ready)
		c, err := up.Accept(cc)
		if err == nil {
			_ = c.Close(ws.StatusNormalClosure, "")
		}
		res <- err
	}()
	t.Cleanup(func() { <-ready })
	return ln.Addr().String(), cc, res
}

// A request with an endless header line (or endless header lines), sent
// as fast as the network goes: Accept stops reading after
// MaxHandshakeBytes (64 KiB by default), answers 431 and fails with
// ErrHandshakeTooBig. gobwas/ws alone reads a line of any length into
// memory until the handshake timeout; the test logs what the same attack
// costs with the limit raised out of the way.
func TestHostileHandshakeBomb(t *testing.T) {
	const sent = 16 << 20
	for _, tc := range []struct {
		name string
		head string
		line []byte
	}{
		{"one endless line", "GET /", bytes.Repeat([]byte{'a'}, 64<<10)},
		{"endless header lines", "GET / HTTP/1.1\r\nHost: x\r\n", bytes.Repeat([]byte("X-A: b\r\n"), 8<<10)},
	} {
		for _, limit := range []int{0, 1 << 30} {
			t.Run(fmt.Sprintf("%s/limit=%d", tc.name, limit), func(t *testing.T) {
				if limit != 0 && testing.Short() {
					t.Skip("the unlimited run only measures")
				}
				// A fake clock that nobody advances: the handshake timer plays no part.
				up := &core.Upgrader{Config: core.Config{Clock: clockwork.NewFakeClock()}, MaxHandshakeBytes: limit}
				addr, cc, res := acceptOne(t, up)
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				before := totalAlloc()
				wrote := flood(nc, []byte(tc.head), tc.line, sent)
				if limit == 0 {
					err = waitErr(t, res)
					allocated := totalAlloc() - before
					if !errors.Is(err, core.ErrHandshakeTooBig) {
						t.Fatalf("Accept = %v, want ErrHandshakeTooBig", err)
					}
					resp, _ := bufio.NewReader(nc).ReadString('\n')
					if !strings.HasPrefix(resp, "HTTP/1.1 431 ") {
						t.Fatalf("answer %q, want 431", resp)
					}
					_ = nc.Close()
					n := <-wrote
					read := cc.n.Load()
					t.Logf("%s: peer wrote %d bytes; server read %d, limit %d; process allocated %d bytes meanwhile", tc.name, n, read, core.DefaultMaxHandshakeBytes, allocated)
					if read > core.DefaultMaxHandshakeBytes {
						t.Fatalf("the server read %d bytes of handshake, limit %d", read, core.DefaultMaxHandshakeBytes)
					}
					if allocated > 4<<20 {
						t.Fatalf("a refused handshake allocated %d bytes", allocated)
					}
					return
				}
				n := <-wrote // all of it: the server reads on
				_ = nc.Close()
				err = waitErr(t, res)
				t.Logf("%s without a limit: peer wrote %d bytes, server read %d, process allocated %d bytes; Accept: %v", tc.name, n, cc.n.Load(), totalAlloc()-before, err)
			})
		}
	}
}

// Headers trickled for ever (slow loris), one byte at a time, never
// finishing: each byte is progress, but the handshake timer (10 s by
// default, on the injected clock) is not reset by progress, and Accept
// fails when it fires.
func TestHostileSlowLoris(t *testing.T) {
	clock := clockwork.NewFakeClock()
	addr, cc, res := acceptOne(t, &core.Upgrader{Config: core.Config{Clock: clock}})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil { // the handshake timer
		t.Fatal(err)
	}
	trickle := []byte("GET / HTTP/1.1\r\nX-Slow: ")
	step := core.DefaultHandshakeTimeout / 10
	for i := range 9 {
		// One byte, then wait until the server has read it, then let time pass.
		if _, err := nc.Write(trickle[i : i+1]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return cc.n.Load() >= int64(i+1) })
		clock.Advance(step)
		select {
		case err := <-res:
			t.Fatalf("Accept returned after %v: %v", time.Duration(i+1)*step, err)
		default:
		}
	}
	clock.Advance(step) // 10 s in all
	if err := waitErr(t, res); !errors.Is(err, core.ErrHandshakeTimeout) {
		t.Fatalf("Accept = %v, want ErrHandshakeTimeout", err)
	}
}

// A hostile server that answers the handshake with an endless header: Dial
// reads at most MaxHandshakeBytes and fails with ErrHandshakeTooBig
// instead of buffering all of it.
func TestHostileServerHandshakeBomb(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wrote := make(chan int, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			wrote <- 0
			return
		}
		defer nc.Close()
		_, _ = http.ReadRequest(bufio.NewReader(nc))
		n := <-flood(nc, []byte("HTTP/1.1 101 Switching Protocols\r\nX-Bomb: "), bytes.Repeat([]byte{'a'}, 64<<10), 16<<20)
		wrote <- n
	}()
	before := totalAlloc()
	_, err = core.Dial(testCtx(t), "ws://"+ln.Addr().String()+"/", core.Config{})
	allocated := totalAlloc() - before
	if !errors.Is(err, core.ErrHandshakeTooBig) {
		t.Fatalf("Dial = %v, want ErrHandshakeTooBig", err)
	}
	t.Logf("server handshake bomb: Dial failed with %v; process allocated %d bytes", err, allocated)
	if allocated > 4<<20 {
		t.Fatalf("a refused handshake allocated %d bytes", allocated)
	}
	ln.Close()
	<-wrote
}

// A ping flood from a peer that never reads its pongs: once the socket
// buffers are full the pong write blocks the read loop, so the server
// stops reading the flood; a server heartbeat, whose ping cannot be
// answered, drops the connection after interval + timeout on the injected
// clock. What the server read is bounded by the socket buffers, not by the
// flood.
func TestHostilePingFloodWithoutReadingIsDropped(t *testing.T) {
	clock := clockwork.NewFakeClock()
	hb, err := heartbeat.New(heartbeat.Config{Interval: 30 * time.Second, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var cc *countingConn
	p := newRawPeerWrap(t, &core.Upgrader{Config: core.Config{Clock: clock, Plugins: []core.Plugin{hb}}}, func(nc net.Conn) net.Conn {
		_ = nc.(*net.TCPConn).SetWriteBuffer(8 << 10)
		cc = &countingConn{Conn: nc}
		return cc
	})
	_ = p.nc.(*net.TCPConn).SetReadBuffer(8 << 10)
	ping := frameWire(t, masked(ws.NewPingFrame(bytes.Repeat([]byte{'p'}, 125))))
	const floodBytes = 16 << 20
	wrote := flood(p.nc, ping, ping, floodBytes) // and never a read
	// The flood is under way: the server has answered more pings than the
	// readiness ping. (It reads about 22 KB here before its pongs block it.)
	waitFor(t, func() bool { return cc.n.Load() >= 8<<10 })

	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil { // the heartbeat's interval
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil { // its ping is out (or stuck): the timeout
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	err = waitErr(t, p.serve)
	if !errors.Is(err, heartbeat.ErrTimeout) {
		t.Fatalf("Serve = %v, want heartbeat.ErrTimeout", err)
	}
	_ = p.nc.Close()
	n := <-wrote
	read := cc.n.Load()
	t.Logf("ping flood, peer not reading: dropped after 40 s (simulated); the peer wrote %d bytes, the server read %d", n, read)
	if read >= floodBytes {
		t.Fatalf("the server read the whole flood (%d bytes) without its pongs being read", read)
	}
}
