package core

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/internal/memconn"
)

// streamConn is a net.Conn whose Read serves a fixed byte stream, then
// io.EOF, and whose Write discards: a peer that says exactly what the fuzzer
// wants and never answers.
type streamConn struct {
	r *bytes.Reader
}

func (s *streamConn) Read(p []byte) (int, error)         { return s.r.Read(p) }
func (s *streamConn) Write(p []byte) (int, error)        { return len(p), nil }
func (s *streamConn) Close() error                       { return nil }
func (s *streamConn) LocalAddr() net.Addr                { return memconn.Addr{} }
func (s *streamConn) RemoteAddr() net.Addr               { return memconn.Addr{} }
func (s *streamConn) SetDeadline(t time.Time) error      { return nil }
func (s *streamConn) SetReadDeadline(t time.Time) error  { return nil }
func (s *streamConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzInboundFrames feeds arbitrary bytes to a server connection's read
// loop, as a hostile client would. Whatever the input, Serve must return a
// *CloseError (never panic, never hang), and every message handed to the
// handler must respect the size limit and, for text, be valid UTF-8.
//
// The seed corpus runs with every `go test`; `go test -fuzz FuzzInboundFrames
// ./core/` searches further.
func FuzzInboundFrames(f *testing.F) {
	seed := func(frames ...ws.Frame) []byte {
		var b bytes.Buffer
		for _, fr := range frames {
			_ = ws.WriteFrame(&b, fr)
		}
		return b.Bytes()
	}
	m := ws.MaskFrame
	f.Add(seed(m(ws.NewTextFrame([]byte("hello")))))
	f.Add(seed(m(ws.NewBinaryFrame(make([]byte, 300)))))
	f.Add(seed(m(ws.NewFrame(ws.OpText, false, []byte("frag"))), m(ws.NewPingFrame([]byte("p"))), m(ws.NewFrame(ws.OpContinuation, true, []byte("ment")))))
	f.Add(seed(m(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))))
	f.Add(seed(m(ws.NewTextFrame([]byte{0xff}))))
	f.Add(seed(ws.NewTextFrame([]byte("unmasked"))))
	f.Add(seed(m(ws.NewFrame(ws.OpCode(0x3), true, nil))))
	f.Add(seed(m(ws.NewBinaryFrame(make([]byte, 5000)))))
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{0x81})

	f.Fuzz(func(t *testing.T, stream []byte) {
		const limit = 4096
		cfg, err := Config{MaxMessageSize: limit, ReadBufferSize: 512}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Handler = func(_ context.Context, fr Frame) error {
			if len(fr.Payload) > limit {
				t.Fatalf("handler got %d bytes over the %d limit", len(fr.Payload), limit)
			}
			return nil
		}
		c, _ := newConn(&streamConn{r: bytes.NewReader(stream)}, nil, nil, false, "", cfg)
		err = c.Serve(context.Background())
		var ce *CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("Serve returned %v (%T), want a *CloseError", err, err)
		}
		if ce.Code == 0 {
			t.Fatalf("close cause without a code: %v", err)
		}
		if !ce.Remote && ce.Code == ws.StatusAbnormalClosure && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("abnormal closure not caused by the end of input: %v", err)
		}
	})
}
