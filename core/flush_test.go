package core_test

import (
	"bytes"
	"context"
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
