package tether_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/middleware"
)

// phasedConn is a net.Conn that serves a request, then (once the request
// was read to its end) a stream of frames, then io.EOF; writes are
// discarded. The request comes alone so that the handshake's buffered
// reader cannot swallow frames.
type phasedConn struct {
	mu     sync.Mutex
	req    *bytes.Reader
	frames *bytes.Reader
}

func (p *phasedConn) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.req.Len() > 0 {
		return p.req.Read(b)
	}
	return p.frames.Read(b)
}

func (p *phasedConn) Write(b []byte) (int, error)      { return len(b), nil }
func (p *phasedConn) Close() error                     { return nil }
func (p *phasedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (p *phasedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (p *phasedConn) SetDeadline(time.Time) error      { return nil }
func (p *phasedConn) SetReadDeadline(time.Time) error  { return nil }
func (p *phasedConn) SetWriteDeadline(time.Time) error { return nil }

const upgradeRequest = "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// FuzzServerStack feeds arbitrary frames to a server built the way users
// build one, with the whole inbound path in place: the text heartbeat
// (which consumes "ping" and "pong"), Recover, MaxSize and Logging in
// front of the handler. Whatever the input, Serve ends with a *CloseError
// that has a code, and the handler never sees a heartbeat message, a
// message over MaxSize or text that is not UTF-8.
func FuzzServerStack(f *testing.F) {
	frames := func(fr ...ws.Frame) []byte {
		var b bytes.Buffer
		for _, x := range fr {
			_ = ws.WriteFrame(&b, ws.MaskFrame(x))
		}
		return b.Bytes()
	}
	f.Add(frames(ws.NewTextFrame([]byte("ping")), ws.NewTextFrame([]byte("hello"))))
	f.Add(frames(ws.NewTextFrame([]byte("pong")), ws.NewBinaryFrame([]byte("ping"))))
	f.Add(frames(ws.NewFrame(ws.OpText, false, []byte("pi")), ws.NewFrame(ws.OpContinuation, true, []byte("ng"))))
	f.Add(frames(ws.NewBinaryFrame(make([]byte, 300))))
	f.Add(frames(ws.NewTextFrame([]byte{0xff})))
	f.Add(frames(ws.NewPingFrame([]byte("p")), ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))))

	f.Fuzz(func(t *testing.T, stream []byte) {
		const maxSize = 256
		quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		maxSizeMW, err := middleware.MaxSize(maxSize)
		if err != nil {
			t.Fatal(err)
		}
		up, err := tether.ServerUpgrader(
			tether.WithClock(clockwork.NewFakeClock()),
			tether.WithHeartbeat(heartbeat.Config{Mode: heartbeat.Text}),
			tether.WithMaxMessageSize(1024),
			tether.WithMiddleware(middleware.Recover(), maxSizeMW, middleware.Logging(quiet, middleware.Inbound)),
			tether.WithHandler(func(_ context.Context, fr core.Frame) error {
				switch {
				case fr.Op == ws.OpText && (string(fr.Payload) == "ping" || string(fr.Payload) == "pong"):
					t.Fatalf("the handler got the heartbeat message %q", fr.Payload)
				case len(fr.Payload) > maxSize:
					t.Fatalf("the handler got %d bytes past MaxSize(%d)", len(fr.Payload), maxSize)
				case fr.Op == ws.OpText && !utf8.Valid(fr.Payload):
					t.Fatalf("the handler got invalid UTF-8 %q", fr.Payload)
				}
				return nil
			}),
		)
		if err != nil {
			t.Fatal(err)
		}
		c, err := up.Accept(&phasedConn{req: bytes.NewReader([]byte(upgradeRequest)), frames: bytes.NewReader(stream)})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Serve(context.Background())
		var ce *core.CloseError
		if !errors.As(err, &ce) || ce.Code == 0 {
			t.Fatalf("Serve returned %v, want a *CloseError with a code", err)
		}
	})
}
