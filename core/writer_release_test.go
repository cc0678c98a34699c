package core

import (
	"bufio"
	"context"
	"net"
	"testing"

	"github.com/gobwas/ws"
)

func (c *Conn) holdsWriter() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.bw != nil
}

// A write from outside the read loop gives the empty write buffer back
// once it flushed (an idle connection holds none between heartbeats); the
// next write takes one again and its frame is intact. A reply from the
// read loop keeps the buffer: that is the per-frame path.
func TestWriterGivenBackWhenIdle(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	frames := make(chan ws.Frame, 8)
	go func() {
		br := bufio.NewReader(b)
		for {
			f, err := ws.ReadFrame(br)
			if err != nil {
				close(frames)
				return
			}
			if f.Header.OpCode.IsData() {
				frames <- f
			}
		}
	}()
	next := func(want string) {
		t.Helper()
		f, ok := <-frames
		if !ok || string(f.Payload) != want {
			t.Fatalf("got %q (%v), want %q", f.Payload, ok, want)
		}
	}
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var c *Conn
	cfg.Handler = func(ctx context.Context, f Frame) error { return c.Write(ctx, f.Op, f.Payload) }
	c, err = newConn(a, nil, nil, false, "", cfg)
	if err != nil {
		t.Fatal(err)
	}
	big := string(make([]byte, 3*DefaultWriteBufferSize))
	for _, m := range []string{"one", big, "two"} {
		if err := c.WriteText(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		next(m)
		if c.holdsWriter() {
			t.Fatalf("after writing %d bytes from outside the read loop the write buffer is still held", len(m))
		}
	}

	served := make(chan error, 1)
	go func() { served <- c.Serve(context.Background()) }()
	in, err := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte("echo"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(in); err != nil {
		t.Fatal(err)
	}
	next("echo")
	if !c.holdsWriter() {
		t.Fatal("the read loop's reply gave the write buffer back")
	}
	_ = c.handle.Abort(nil)
	<-served
}
