package core_test

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// When replies leave the write buffer: before the read loop waits for input
// it does not have, and once per batch of pipelined messages.

func frameBytes(t *testing.T, f ws.Frame) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readSoon reads one frame; the deadline is only a hang guard, reached when
// a reply was left unflushed.
func (p *rawPeer) readSoon(t *testing.T) ws.Frame {
	t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(5 * time.Second)) // wall time: hang guard on a real socket
	defer p.nc.SetReadDeadline(time.Time{})
	f, err := ws.ReadFrame(p.br)
	if err != nil {
		t.Fatalf("no frame: %v (a reply was left in the write buffer)", err)
	}
	return f
}

// A ping and the first byte of the next frame in one TCP segment: the pong
// must be flushed before the read loop blocks for the rest of that frame.
func TestPongFlushedBeforeBlockingOnPartialFrame(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	ping := frameBytes(t, masked(ws.NewPingFrame([]byte("hb"))))
	next := frameBytes(t, masked(ws.NewTextFrame([]byte("hello"))))
	if _, err := p.nc.Write(append(ping, next[0])); err != nil {
		t.Fatal(err)
	}
	if f := p.readSoon(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "hb" {
		t.Fatalf("got %v %q, want pong hb", f.Header.OpCode, f.Payload)
	}
}

// A handler's reply, then the head of a frame bigger than the read buffer:
// the reply goes out before the read loop waits for the big frame.
func TestReplyFlushedBeforeBlockingOnBigFrame(t *testing.T) {
	up := &core.Upgrader{Config: core.Config{Handler: func(ctx context.Context, f core.Frame) error {
		if f.Op == ws.OpText {
			return core.FromContext(ctx).Write(ctx, ws.OpText, f.Payload)
		}
		return nil
	}}}
	p := newRawPeer(t, up)
	msg := frameBytes(t, masked(ws.NewTextFrame([]byte("echo me"))))
	big := frameBytes(t, masked(ws.NewBinaryFrame(make([]byte, 100000))))
	if _, err := p.nc.Write(append(msg, big[:1000]...)); err != nil {
		t.Fatal(err)
	}
	if f := p.readSoon(t); string(f.Payload) != "echo me" {
		t.Fatalf("got %q", f.Payload)
	}
}

// countWrites counts the writes to the socket it wraps.
type countWrites struct {
	net.Conn
	n *atomic.Int64
}

func (c countWrites) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// A batch of pipelined messages, read in one go, costs one write to the
// socket for all the handler's replies (written with the handler's ctx):
// they are flushed once the read loop has handled every frame it already
// had, before it waits for more.
func TestPipelinedRepliesShareOneWrite(t *testing.T) {
	var writes atomic.Int64
	echo := func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}
	p := newPipePeer(t, &core.Upgrader{Config: core.Config{Handler: echo}}, func(nc net.Conn) net.Conn {
		return countWrites{Conn: nc, n: &writes}
	})
	const n = 10
	var batch []byte
	for i := range n {
		batch = append(batch, frameBytes(t, masked(ws.NewTextFrame([]byte{'a' + byte(i)})))...)
	}
	before := writes.Load()
	sent := make(chan error, 1)
	go func() { _, err := p.nc.Write(batch); sent <- err }() // net.Pipe: one read takes it all
	for i := range n {
		if f := p.readFrame(t); string(f.Payload) != string(rune('a'+i)) {
			t.Fatalf("reply %d: %q", i, f.Payload)
		}
	}
	if err := waitErr(t, sent); err != nil {
		t.Fatal(err)
	}
	if got := writes.Load() - before; got != 1 {
		t.Fatalf("%d socket writes for %d pipelined replies, want 1", got, n)
	}
}
