package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// A tether client and a tether server over loopback TCP: text and binary
// messages both ways, small and bigger than the read buffer, then a clean
// close handshake started by the client.
func TestLoopbackEchoAndClose(t *testing.T) {
	echo := func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}
	srv := newTCPServer(t, &core.Upgrader{Config: core.Config{Handler: echo}})

	in := newInbox()
	c, err := core.Dial(testCtx(t), srv.wsURL(), core.Config{Handler: in.handle})
	if err != nil {
		t.Fatal(err)
	}
	cliDone := served(c)
	sc := srv.conn(t)

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB: bigger than the 4 KiB read buffer
	msgs := []core.Frame{
		{Op: ws.OpText, Payload: []byte("hello")},
		{Op: ws.OpBinary, Payload: []byte{0, 1, 2, 255}},
		{Op: ws.OpText, Payload: []byte{}},
		{Op: ws.OpBinary, Payload: big},
		{Op: ws.OpText, Payload: []byte("héllo wörld ✓")},
	}
	for _, m := range msgs {
		if err := c.Write(testCtx(t), m.Op, m.Payload); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	for i, want := range msgs {
		got := in.next(t)
		if got.Op != want.Op || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("message %d: got op %v, %d bytes; want op %v, %d bytes", i, got.Op, len(got.Payload), want.Op, len(want.Payload))
		}
	}

	if err := c.Close(ws.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v (want nil: it started the close)", err)
	}
	ce := asClose(t, waitErr(t, cliDone))
	if ce.Code != ws.StatusNormalClosure || ce.Reason != "bye" || ce.Remote {
		t.Fatalf("client cause = %+v, want local 1000 bye", ce)
	}
	sce := asClose(t, waitErr(t, srv.errs))
	if sce.Code != ws.StatusNormalClosure || sce.Reason != "bye" || !sce.Remote {
		t.Fatalf("server cause = %+v, want remote 1000 bye", sce)
	}
	waitDone(t, sc)
	if !errors.Is(c.Close(ws.StatusNormalClosure, ""), net.ErrClosed) {
		t.Fatal("second Close did not return net.ErrClosed")
	}
	if err := c.WriteText(testCtx(t), "late"); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Write after close: %v, want ErrClosed", err)
	}
}

// The server closes, the client answers: Close reports a clean handshake on
// the server side and the client sees a remote close with the code.
func TestCloseHandshakeFromServer(t *testing.T) {
	srv := newTCPServer(t, &core.Upgrader{})
	c, err := core.Dial(testCtx(t), srv.wsURL(), core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cliDone := served(c)
	sc := srv.conn(t)
	if err := sc.Close(4001, "custom"); err != nil {
		t.Fatalf("server Close: %v", err)
	}
	ce := asClose(t, waitErr(t, cliDone))
	if ce.Code != 4001 || ce.Reason != "custom" || !ce.Remote {
		t.Fatalf("client cause = %+v, want remote 4001 custom", ce)
	}
	if got := core.CloseStatus(c.Err()); got != 4001 {
		t.Fatalf("CloseStatus = %d", got)
	}
	waitErr(t, srv.errs)
}

// Fragmented messages are reassembled, control frames in between are
// answered, and a fragmented text message is checked for UTF-8 as a whole
// (a rune split across fragments is fine).
func TestFragmentedMessages(t *testing.T) {
	in := newInbox()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Handler: in.handle}})

	p.send(t, masked(ws.NewFrame(ws.OpText, false, []byte("hé"[:2])))) // "h" + first byte of é
	p.send(t, masked(ws.NewPingFrame([]byte("mid"))))
	p.send(t, masked(ws.NewFrame(ws.OpContinuation, false, []byte("hé"[2:]))))
	p.send(t, masked(ws.NewFrame(ws.OpContinuation, true, []byte(" world"))))

	pong := p.readFrame(t)
	if pong.Header.OpCode != ws.OpPong || string(pong.Payload) != "mid" {
		t.Fatalf("got %v %q, want pong mid", pong.Header.OpCode, pong.Payload)
	}
	got := in.next(t)
	if got.Op != ws.OpText || string(got.Payload) != "hé world" {
		t.Fatalf("got %v %q", got.Op, got.Payload)
	}

	// A big binary message in many fragments.
	var want []byte
	for i := range 50 {
		chunk := bytes.Repeat([]byte{byte(i)}, 1000)
		want = append(want, chunk...)
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpBinary
		}
		p.send(t, masked(ws.NewFrame(op, i == 49, chunk)))
	}
	got = in.next(t)
	if got.Op != ws.OpBinary || !bytes.Equal(got.Payload, want) {
		t.Fatalf("reassembled %d bytes, want %d", len(got.Payload), len(want))
	}
}

// Many goroutines write at once; under -race, and on the wire, every
// message arrives whole and once: no interleaved frame.
func TestConcurrentWriters(t *testing.T) {
	in := newInbox()
	srv := newTCPServer(t, &core.Upgrader{Config: core.Config{Handler: in.handle}})
	c, h := dialWithHandle(t, srv.wsURL(), core.Config{})
	cliDone := served(c)
	srv.conn(t)

	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("w%02d-%03d-%s", w, i, strings.Repeat("x", (w*each+i)%700))
				if err := c.WriteText(context.Background(), msg); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				if i%10 == 0 {
					if err := h.Ping(context.Background(), []byte("p")); err != nil {
						t.Errorf("ping: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	last := map[string]int{}
	for range writers * each {
		f := in.next(t)
		s := string(f.Payload)
		if seen[s] {
			t.Fatalf("duplicate %q", s[:10])
		}
		seen[s] = true
		var w, i int
		if _, err := fmt.Sscanf(s[:8], "w%02d-%03d", &w, &i); err != nil {
			t.Fatalf("corrupt message %q", s)
		}
		if want := strings.Repeat("x", (w*each+i)%700); s[8:] != want {
			t.Fatalf("message %s corrupt", s[:8])
		}
		key := s[:3]
		if prev, ok := last[key]; ok && i <= prev {
			t.Fatalf("writer %s out of order: %d after %d", key, i, prev)
		}
		last[key] = i
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	waitErr(t, cliDone)
	waitErr(t, srv.errs)
}

// The peer's ping is answered with a pong carrying its payload, and pings
// and pongs reach the control handlers registered by a plugin.
func TestPingPongAndControlHandlers(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	plugin := core.PluginFunc(func(h *core.Handle) error {
		return h.OnControl(func(op ws.OpCode, p []byte) {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%v:%s", op, p))
			mu.Unlock()
		})
	})
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Plugins: []core.Plugin{plugin}}})
	p.send(t, masked(ws.NewPingFrame([]byte("abc"))))
	f := p.readFrame(t)
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "abc" {
		t.Fatalf("got %v %q", f.Header.OpCode, f.Payload)
	}
	p.send(t, masked(ws.NewPongFrame([]byte("unsolicited"))))
	// The server pings; the raw peer sees it.
	if err := p.h.Ping(context.Background(), []byte("srv")); err != nil {
		t.Fatal(err)
	}
	if f := p.readFrame(t); f.Header.OpCode != ws.OpPing || string(f.Payload) != "srv" {
		t.Fatalf("got %v %q", f.Header.OpCode, f.Payload)
	}
	if err := p.h.Ping(context.Background(), make([]byte, 126)); !errors.Is(err, core.ErrControlTooBig) {
		t.Fatalf("126-byte ping: %v", err)
	}
	p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	waitErr(t, p.serve)
	mu.Lock()
	defer mu.Unlock()
	want := []string{fmt.Sprintf("%v:ready?", ws.OpPing), fmt.Sprintf("%v:abc", ws.OpPing), fmt.Sprintf("%v:unsolicited", ws.OpPong)}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("control handlers saw %v, want %v", seen, want)
	}
}
