package core_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// countingReader stands in for net/http's connection reader, which the
// hijacked bufio.Reader reads through.
type countingReader struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) { c.reads.Add(1); return c.r.Read(p) }

// hijacker is the minimum of net/http's ResponseWriter an upgrade needs.
type hijacker struct {
	nc net.Conn
	rw *bufio.ReadWriter
	h  http.Header
}

func (h *hijacker) Header() http.Header                          { return h.h }
func (h *hijacker) Write(p []byte) (int, error)                  { return h.nc.Write(p) }
func (h *hijacker) WriteHeader(int)                              {}
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.nc, h.rw, nil }

// After Upgrade, frames are read from the socket itself, not through the
// reader net/http handed over: that reader's state would otherwise be kept
// alive, and passed through, for the connection's whole life. Its buffer is
// still reused.
func TestUpgradeReadsTheSocketDirectly(t *testing.T) {
	sc, cc := net.Pipe()
	defer cc.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	go func() { _, _ = cc.Write([]byte(req)) }()
	via := &countingReader{r: sc}
	br := bufio.NewReaderSize(via, core.DefaultReadBufferSize)
	r, err := http.ReadRequest(br)
	if err != nil {
		t.Fatal(err)
	}
	before := via.reads.Load()

	resp := make(chan error, 1)
	go func() { // the client reads the 101 while the server writes it (net.Pipe is synchronous)
		_, err := http.ReadResponse(bufio.NewReader(cc), nil)
		resp <- err
	}()
	got := make(chan []byte, 1)
	up := &core.Upgrader{Config: core.Config{Handler: func(_ context.Context, f core.Frame) error {
		got <- bytes.Clone(f.Payload)
		return nil
	}}}
	c, err := up.Upgrade(&hijacker{nc: sc, rw: bufio.NewReadWriter(br, bufio.NewWriter(sc)), h: http.Header{}}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-resp; err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- c.Serve(context.Background()) }()

	frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame([]byte("hello"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Write(frame); err != nil {
		t.Fatal(err)
	}
	if p := <-got; string(p) != "hello" {
		t.Fatalf("handler got %q", p)
	}
	if n := via.reads.Load() - before; n != 0 {
		t.Fatalf("%d reads went through net/http's reader after the upgrade", n)
	}
	_ = cc.Close()
	<-served
}
