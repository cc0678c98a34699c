package core_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// Every violation a peer can commit closes the connection with the code
// RFC 6455 calls for, and Serve returns an error that names the problem.
// None panics.
func TestBadInputClosesWithTheRightCode(t *testing.T) {
	closeBody := func(code uint16, reason string) []byte {
		return append([]byte{byte(code >> 8), byte(code)}, reason...)
	}
	cases := []struct {
		name     string
		frames   []ws.Frame
		code     ws.StatusCode
		is       error
		mentions string
	}{
		{
			name:     "reserved opcode",
			frames:   []ws.Frame{masked(ws.NewFrame(ws.OpCode(0x3), true, []byte("x")))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "reserved opcode",
		},
		{
			name:     "reserved control opcode",
			frames:   []ws.Frame{masked(ws.NewFrame(ws.OpCode(0xB), true, nil))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "reserved opcode",
		},
		{
			name:     "unmasked client frame",
			frames:   []ws.Frame{ws.NewTextFrame([]byte("hi"))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "unmasked",
		},
		{
			name: "reserved bits without extension",
			frames: func() []ws.Frame {
				f := masked(ws.NewTextFrame([]byte("hi")))
				f.Header.Rsv = ws.Rsv(true, false, false)
				return []ws.Frame{f}
			}(),
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "reserved bits",
		},
		{
			name:     "control frame over 125 bytes",
			frames:   []ws.Frame{masked(ws.NewPingFrame(make([]byte, 126)))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "over 125",
		},
		{
			name:     "fragmented control frame",
			frames:   []ws.Frame{masked(ws.NewFrame(ws.OpPing, false, []byte("p")))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "fragmented control",
		},
		{
			name:     "continuation without start",
			frames:   []ws.Frame{masked(ws.NewFrame(ws.OpContinuation, true, []byte("x")))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "continuation",
		},
		{
			name: "new message inside a fragmented one",
			frames: []ws.Frame{
				masked(ws.NewFrame(ws.OpText, false, []byte("a"))),
				masked(ws.NewFrame(ws.OpText, true, []byte("b"))),
			},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "inside a fragmented",
		},
		{
			name:     "invalid UTF-8 text",
			frames:   []ws.Frame{masked(ws.NewTextFrame([]byte{'o', 'k', 0xff, 0xfe}))},
			code:     ws.StatusInvalidFramePayloadData,
			is:       core.ErrInvalidUTF8,
			mentions: "UTF-8",
		},
		{
			name: "invalid UTF-8 across fragments",
			frames: []ws.Frame{
				masked(ws.NewFrame(ws.OpText, false, []byte("ok"))),
				masked(ws.NewFrame(ws.OpContinuation, true, []byte{0xc3})), // a rune's first byte, never finished
			},
			code:     ws.StatusInvalidFramePayloadData,
			is:       core.ErrInvalidUTF8,
			mentions: "UTF-8",
		},
		{
			name:     "message over the limit",
			frames:   []ws.Frame{masked(ws.NewBinaryFrame(make([]byte, 1025)))},
			code:     ws.StatusMessageTooBig,
			is:       core.ErrMessageTooBig,
			mentions: "1025 bytes, limit 1024",
		},
		{
			name: "fragments adding up over the limit",
			frames: []ws.Frame{
				masked(ws.NewFrame(ws.OpBinary, false, make([]byte, 600))),
				masked(ws.NewFrame(ws.OpContinuation, true, make([]byte, 600))),
			},
			code:     ws.StatusMessageTooBig,
			is:       core.ErrMessageTooBig,
			mentions: "1200 bytes, limit 1024",
		},
		{
			name:     "close code 1005 sent on the wire",
			frames:   []ws.Frame{masked(ws.NewCloseFrame(closeBody(1005, "")))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "code 1005",
		},
		{
			name:     "close code 999",
			frames:   []ws.Frame{masked(ws.NewCloseFrame(closeBody(999, "")))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "code 999",
		},
		{
			name:     "close code in the reserved 2000 range",
			frames:   []ws.Frame{masked(ws.NewCloseFrame(closeBody(2000, "")))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "code 2000",
		},
		{
			name:     "close frame with one byte",
			frames:   []ws.Frame{masked(ws.NewCloseFrame([]byte{3}))},
			code:     ws.StatusProtocolError,
			is:       core.ErrProtocol,
			mentions: "1-byte",
		},
		{
			name:     "close reason not UTF-8",
			frames:   []ws.Frame{masked(ws.NewCloseFrame(closeBody(1000, "\xff")))},
			code:     ws.StatusInvalidFramePayloadData,
			is:       core.ErrInvalidUTF8,
			mentions: "close reason",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: 1024}})
			for _, f := range tc.frames {
				p.send(t, f)
			}
			code, _ := p.readClose(t)
			if code != tc.code {
				t.Errorf("close frame code = %d, want %d", code, tc.code)
			}
			err := waitErr(t, p.serve)
			ce := asClose(t, err)
			if ce.Code != tc.code || ce.Remote {
				t.Errorf("cause = %+v, want local code %d", ce, tc.code)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("error %q does not mention %q", err, tc.mentions)
			}
		})
	}
}

// A 64-bit length with its most significant bit set is malformed.
func TestMalformedLength(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	hdr := []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}
	if _, err := p.nc.Write(hdr); err != nil {
		t.Fatal(err)
	}
	code, _ := p.readClose(t)
	if code != ws.StatusProtocolError {
		t.Fatalf("code %d, want 1002", code)
	}
	if err := waitErr(t, p.serve); !errors.Is(err, core.ErrProtocol) {
		t.Fatalf("Serve: %v", err)
	}
}

// A fragment whose declared length would overflow int64 when added to what
// was already received is refused as too big, not read.
func TestHugeDeclaredFragmentLength(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: 1024}})
	p.send(t, masked(ws.NewFrame(ws.OpBinary, false, make([]byte, 10))))
	// Continuation declaring 2^63-1 bytes, masked, then nothing.
	hdr := []byte{0x80, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}
	if _, err := p.nc.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.readClose(t); code != ws.StatusMessageTooBig {
		t.Fatalf("code %d, want 1009", code)
	}
	if err := waitErr(t, p.serve); !errors.Is(err, core.ErrMessageTooBig) {
		t.Fatalf("Serve: %v", err)
	}
}

// A message exactly at the limit passes; data that arrived before a
// violation was delivered: nothing accepted is lost.
func TestLimitIsInclusiveAndEarlierDataKept(t *testing.T) {
	in := newInbox()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: 1024, Handler: in.handle}})
	p.send(t, masked(ws.NewBinaryFrame(bytes.Repeat([]byte{7}, 1024))))
	p.send(t, masked(ws.NewTextFrame([]byte("before"))))
	p.send(t, masked(ws.NewBinaryFrame(make([]byte, 5000))))
	if f := in.next(t); len(f.Payload) != 1024 {
		t.Fatalf("first message: %d bytes", len(f.Payload))
	}
	if f := in.next(t); string(f.Payload) != "before" {
		t.Fatalf("second message: %q", f.Payload)
	}
	if code, _ := p.readClose(t); code != ws.StatusMessageTooBig {
		t.Fatalf("code %d", code)
	}
	waitErr(t, p.serve)
}

// A middleware's error closes the connection with the code it calls for,
// and the reason on the wire never carries the error's internal text. A
// *CloseError is made fit for the wire: a code that may not be sent becomes
// 1011, a long reason is cut on a rune boundary.
func TestMiddlewareErrorClosesWithCode(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	cases := []struct {
		name   string
		err    error
		code   ws.StatusCode
		reason string
	}{
		{"policy", core.ErrPolicy, ws.StatusPolicyViolation, "policy violation"},
		{"too big", core.ErrMessageTooBig, ws.StatusMessageTooBig, "message too big"},
		{"explicit", &core.CloseError{Code: 4400, Reason: "bad request"}, 4400, "bad request"},
		{"anything else", errors.New("db password=hunter2 failed"), ws.StatusInternalServerError, "internal error"},
		{"explicit code 0", &core.CloseError{Code: 0, Reason: "x"}, ws.StatusInternalServerError, "internal error"},
		{"explicit code 1005", &core.CloseError{Code: 1005, Reason: "x"}, ws.StatusInternalServerError, "internal error"},
		{"explicit code 1006", &core.CloseError{Code: 1006, Reason: "x"}, ws.StatusInternalServerError, "internal error"},
		{"explicit code 6000", &core.CloseError{Code: 6000, Reason: "x"}, ws.StatusInternalServerError, "internal error"},
		{"long reason", &core.CloseError{Code: 4000, Reason: long}, 4000, long[:122]},
		{"reason not UTF-8", &core.CloseError{Code: 4000, Reason: "\xff\xfe"}, 4000, "invalid close reason"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refuse := func(core.Handler) core.Handler {
				return func(context.Context, core.Frame) error { return tc.err }
			}
			p := newRawPeer(t, &core.Upgrader{Config: core.Config{Inbound: core.NewChain(refuse)}})
			p.send(t, masked(ws.NewTextFrame([]byte("hi"))))
			code, reason := p.readClose(t)
			if code != tc.code || reason != tc.reason {
				t.Fatalf("close frame %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
			// The peer answers; the handshake completes cleanly.
			p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
			err := waitErr(t, p.serve)
			if ce := asClose(t, err); ce.Code != tc.code || !errors.Is(err, tc.err) {
				t.Fatalf("cause %v, want code %d wrapping %v", err, tc.code, tc.err)
			}
		})
	}
}

// Constructors refuse bad settings with a clear error, never a panic.
func TestBadSettings(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		dial func() error
		is   error
	}{
		{"unsupported scheme", func() error { _, err := core.Dial(ctx, "ftp://example.com/", core.Config{}); return err }, core.ErrBadURL},
		{"no host", func() error { _, err := core.Dial(ctx, "ws:///path", core.Config{}); return err }, core.ErrBadURL},
		{"malformed", func() error { _, err := core.Dial(ctx, "ws://[::1", core.Config{}); return err }, core.ErrBadURL},
		{"empty", func() error { _, err := core.Dial(ctx, "", core.Config{}); return err }, core.ErrBadURL},
		{"negative limit", func() error {
			_, err := core.Dial(ctx, "ws://127.0.0.1:1/", core.Config{MaxMessageSize: -1})
			return err
		}, core.ErrInvalidConfig},
		{"negative close timeout", func() error {
			_, err := core.Dial(ctx, "ws://127.0.0.1:1/", core.Config{CloseTimeout: -1})
			return err
		}, core.ErrInvalidConfig},
		{"negative buffer", func() error {
			_, err := core.Dial(ctx, "ws://127.0.0.1:1/", core.Config{ReadBufferSize: -1})
			return err
		}, core.ErrInvalidConfig},
		{"nil plugin", func() error {
			_, err := core.Dial(ctx, "ws://127.0.0.1:1/", core.Config{Plugins: []core.Plugin{nil}})
			return err
		}, core.ErrInvalidConfig},
		{"negative handshake timeout", func() error {
			_, err := (&core.Dialer{HandshakeTimeout: -1}).Dial(ctx, "ws://127.0.0.1:1/")
			return err
		}, core.ErrInvalidConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.dial()
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
		})
	}
}

// Close refuses codes that may not be sent and oversized reasons, and the
// connection stays open.
func TestCloseArgumentsChecked(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	for _, code := range []ws.StatusCode{0, 999, 1004, 1005, 1006, 1015, 2999, 5000} {
		if err := p.srv.Close(code, ""); !errors.Is(err, core.ErrBadCloseCode) {
			t.Errorf("Close(%d) = %v, want ErrBadCloseCode", code, err)
		}
	}
	if err := p.srv.Close(1000, strings.Repeat("r", 124)); !errors.Is(err, core.ErrControlTooBig) {
		t.Errorf("long reason: %v", err)
	}
	if err := p.srv.Close(1000, "\xff"); !errors.Is(err, core.ErrInvalidUTF8) {
		t.Errorf("bad reason: %v", err)
	}
	if err := p.srv.Write(context.Background(), ws.OpPing, nil); !errors.Is(err, core.ErrBadOpcode) {
		t.Errorf("Write(ping): %v", err)
	}
	// Still open: a message goes through.
	if err := p.srv.WriteText(context.Background(), "still here"); err != nil {
		t.Fatal(err)
	}
	if f := p.readFrame(t); string(f.Payload) != "still here" {
		t.Fatalf("got %q", f.Payload)
	}
}

// Control frames are bounded by 125 bytes, not by MaxMessageSize.
func TestPingBiggerThanMessageLimit(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: 10}})
	p.send(t, masked(ws.NewPingFrame(bytes.Repeat([]byte("p"), 20))))
	if f := p.readFrame(t); f.Header.OpCode != ws.OpPong || len(f.Payload) != 20 {
		code, reason := ws.ParseCloseFrameData(f.Payload)
		t.Fatalf("got %v %d %q, want a 20-byte pong", f.Header.OpCode, code, reason)
	}
}

// A read buffer configured below 256 bytes is raised to 256, so that any
// control frame fits it: a 125-byte ping is answered, and a message bigger
// than the buffer is reassembled.
func TestTinyReadBufferStillReadsControlFrames(t *testing.T) {
	in := newInbox()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{ReadBufferSize: 1, Handler: in.handle}})
	ping := bytes.Repeat([]byte("p"), 125)
	p.send(t, masked(ws.NewPingFrame(ping)))
	if f := p.readFrame(t); f.Header.OpCode != ws.OpPong || !bytes.Equal(f.Payload, ping) {
		t.Fatalf("got %v of %d bytes, want the 125-byte pong", f.Header.OpCode, len(f.Payload))
	}
	msg := bytes.Repeat([]byte("m"), 1000)
	p.send(t, masked(ws.NewBinaryFrame(msg)))
	if f := in.next(t); !bytes.Equal(f.Payload, msg) {
		t.Fatalf("message of %d bytes, want 1000", len(f.Payload))
	}
}
