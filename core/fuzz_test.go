package core

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

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
			if fr.Op == ws.OpText && !utf8.Valid(fr.Payload) {
				t.Fatalf("handler got invalid UTF-8 text %q", fr.Payload)
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

// scriptConn is a net.Conn that reads a script (optionally built from what
// was written so far, for a server that must echo the client's key) and
// records what is written to it. Only one goroutine reads; writes come from
// the connection's writer, under a lock.
type scriptConn struct {
	mu      sync.Mutex
	written bytes.Buffer
	r       *bytes.Reader
	script  func(written []byte) []byte // called on the first Read
	read    int                         // bytes handed to readers
}

func (s *scriptConn) Read(p []byte) (int, error) {
	s.mu.Lock()
	if s.r == nil {
		s.r = bytes.NewReader(s.script(s.written.Bytes()))
	}
	s.mu.Unlock()
	n, err := s.r.Read(p)
	s.mu.Lock()
	s.read += n
	s.mu.Unlock()
	return n, err
}

func (s *scriptConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written.Write(p)
}

func (s *scriptConn) out() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.written.Bytes())
}

func (s *scriptConn) readSoFar() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read
}

func (s *scriptConn) Close() error                       { return nil }
func (s *scriptConn) LocalAddr() net.Addr                { return memconn.Addr{} }
func (s *scriptConn) RemoteAddr() net.Addr               { return memconn.Addr{} }
func (s *scriptConn) SetDeadline(t time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(t time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

const fuzzHandshakeLimit = 2048

// headerLines returns the values of the header lines named name in a raw
// HTTP head, read the way gobwas/ws reads a request (and net/http too, for
// line ends): a line ends at LF, one CR before it is dropped (RFC 9112 2.2
// lets a recipient take a bare LF for a line end), the head ends at the
// first empty line, names and values are trimmed of spaces and tabs, and
// names are compared in ASCII case-insensitively. An oracle that read
// lines differently from the server would see other headers than the ones
// the server decided on (issue 20).
func headerLines(head []byte, name string) []string {
	lines := strings.Split(string(head), "\n")
	lines = lines[:len(lines)-1] // not ended by LF: gobwas fails on it
	var vs []string
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if i == 0 {
			continue // the request or status line
		}
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && asciiEqualFold(strings.Trim(k, " \t"), name) {
			vs = append(vs, strings.Trim(v, " \t"))
		}
	}
	return vs
}

// asciiEqualFold is strings.EqualFold for ASCII letters only, as gobwas
// canonicalizes header names: "Hoſt" is not "Host".
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func validRequest(extra string) []byte {
	return []byte("GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n")
}

// FuzzAcceptHandshake feeds arbitrary request bytes to Upgrader.Accept, as
// a hostile client would, then serves what follows if the handshake
// passed. Accept must never panic, never read more than MaxHandshakeBytes
// of handshake, answer a refusal with an HTTP error (never 101), never
// accept a request without exactly one Host, and never accept one with an
// Origin (not empty) that names another host than its Host.
func FuzzAcceptHandshake(f *testing.F) {
	frames := func(fr ...ws.Frame) []byte {
		var b bytes.Buffer
		for _, x := range fr {
			_ = ws.WriteFrame(&b, x)
		}
		return b.Bytes()
	}
	f.Add(validRequest(""))
	f.Add(append(validRequest(""), frames(ws.MaskFrame(ws.NewTextFrame([]byte("hi"))))...))
	f.Add(validRequest("Origin: http://example.com\r\n"))
	f.Add(validRequest("Origin: https://evil.example\r\n"))
	f.Add(validRequest("Origin: ::not a url\r\n"))
	f.Add(validRequest("Origin: https://evil.example\r\nOrigin:\r\n"))
	f.Add(validRequest("Host: evil.example\r\nOrigin: https://evil.example\r\n"))
	f.Add(bytes.ReplaceAll(validRequest("Origin: http://example.com\r\n"), []byte("\r\n"), []byte("\n")))
	f.Add(validRequest("Sec-WebSocket-Protocol: chat, superchat\r\n"))
	f.Add(validRequest("X-Long: " + strings.Repeat("a", 3000) + "\r\n"))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: example.com\r\n"))
	f.Add([]byte("POST /ws HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	f.Add([]byte("GET /ws HTTP/1.0\r\n\r\n"))
	f.Add([]byte("GET " + strings.Repeat("/", 4000)))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, req []byte) {
		sc := &scriptConn{script: func([]byte) []byte { return req }}
		up := &Upgrader{
			Config:            Config{Clock: clockwork.NewFakeClock(), MaxMessageSize: 4096, ReadBufferSize: 512},
			Protocols:         []string{"chat"},
			MaxHandshakeBytes: fuzzHandshakeLimit,
		}
		c, err := up.Accept(sc)
		if n := sc.readSoFar(); n > fuzzHandshakeLimit {
			t.Fatalf("the handshake read %d bytes, limit %d", n, fuzzHandshakeLimit)
		}
		resp := sc.out()
		if err != nil {
			if c != nil {
				t.Fatal("Accept returned a connection and an error")
			}
			if bytes.HasPrefix(resp, []byte("HTTP/1.1 101")) {
				t.Fatalf("refused (%v) but answered 101", err)
			}
			if len(resp) > 0 && !bytes.HasPrefix(resp, []byte("HTTP/1.1 4")) && !bytes.HasPrefix(resp, []byte("HTTP/1.1 5")) {
				t.Fatalf("refusal answered with %q", resp)
			}
			if errors.Is(err, ErrHandshakeTooBig) && !bytes.HasPrefix(resp, []byte("HTTP/1.1 431")) {
				t.Fatalf("oversized request answered with %q", resp)
			}
			return
		}
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
			t.Fatalf("accepted, but answered %q", resp)
		}
		hosts := headerLines(req, "Host")
		if len(hosts) != 1 {
			t.Fatalf("accepted a request with %d Host lines", len(hosts))
		}
		for _, origin := range headerLines(req, "Origin") {
			if origin == "" {
				continue // an empty Origin counts as absent (see Upgrader.CheckOrigin)
			}
			if o, perr := url.Parse(origin); perr != nil || !strings.EqualFold(o.Host, hosts[0]) {
				t.Fatalf("accepted Origin %q for Host %q", origin, hosts[0])
			}
		}
		err = c.Serve(context.Background())
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code == 0 {
			t.Fatalf("Serve returned %v, want a *CloseError with a code", err)
		}
	})
}

// acceptKey is the Sec-WebSocket-Accept answer to key (RFC 6455 4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// FuzzDialHandshake feeds arbitrary response bytes to Dialer.Dial, as a
// hostile server would ("{accept}" in the input becomes the right
// Sec-WebSocket-Accept for the client's key, so that the fuzzer gets past
// the handshake), then serves what follows. Dial must never panic, never
// read more than MaxHandshakeBytes of handshake, succeed only on a 101, and
// report any other status as a *HandshakeError with that status.
// wellFormedRefusal matches a status line that is an answer, not a 101.
var wellFormedRefusal = regexp.MustCompile(`^HTTP/1\.1 ([2-5][0-9][0-9]|1[1-9][0-9]|10[02-9]) [ -~]*$`)

func FuzzDialHandshake(f *testing.F) {
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
	var frames bytes.Buffer
	_ = ws.WriteFrame(&frames, ws.NewTextFrame([]byte("hello")))
	_ = ws.WriteFrame(&frames, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	f.Add([]byte(ok + "\r\n"))
	f.Add([]byte(ok + "\r\n" + frames.String()))
	f.Add([]byte(ok + "Sec-WebSocket-Protocol: chat\r\n\r\n"))
	f.Add([]byte(ok + "Sec-WebSocket-Protocol: other\r\n\r\n"))
	f.Add([]byte(ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 101 Switching Protocols\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 99999999999999999999 X\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 " + strings.Repeat("x", 3000)))
	f.Add([]byte(ok + "X-Long: " + strings.Repeat("a", 3000) + "\r\n\r\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, resp []byte) {
		sc := &scriptConn{script: func(req []byte) []byte {
			keys := headerLines(req, "Sec-WebSocket-Key")
			if len(keys) != 1 {
				t.Fatalf("the client sent %d keys in %q", len(keys), req)
			}
			return bytes.ReplaceAll(resp, []byte("{accept}"), []byte(acceptKey(keys[0])))
		}}
		d := &Dialer{
			Config:            Config{Clock: clockwork.NewFakeClock(), MaxMessageSize: 4096, ReadBufferSize: 512},
			Protocols:         []string{"chat"},
			MaxHandshakeBytes: fuzzHandshakeLimit,
			NetDial: func(context.Context, string, string) (net.Conn, error) {
				return sc, nil
			},
		}
		c, err := d.Dial(context.Background(), "ws://example.com/ws")
		if n := sc.readSoFar(); n > fuzzHandshakeLimit {
			t.Fatalf("the handshake read %d bytes, limit %d", n, fuzzHandshakeLimit)
		}
		status := ""
		if line, _, found := bytes.Cut(resp, []byte("\n")); found {
			if fields := strings.Fields(string(line)); len(fields) >= 2 {
				status = fields[1]
			}
		}
		if err != nil {
			if c != nil {
				t.Fatal("Dial returned a connection and an error")
			}
			var he *HandshakeError
			if errors.As(err, &he) && (he.StatusCode == 101 || he.StatusCode < 100 || he.StatusCode > 599 ||
				strconv.Itoa(he.StatusCode) != strings.TrimLeft(status, "0")) {
				t.Fatalf("HandshakeError %d for status %q", he.StatusCode, status)
			}
			// The other way round: a well-formed refusal is always reported
			// as one, with its status, so that a classifier can read it.
			if line, _, found := bytes.Cut(resp, []byte("\r\n")); found && wellFormedRefusal.Match(line) && he == nil {
				t.Fatalf("status line %q gave %v, want a *HandshakeError", line, err)
			}
			return
		}
		if status != "101" {
			t.Fatalf("Dial succeeded on status %q", status)
		}
		err = c.Serve(context.Background())
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code == 0 {
			t.Fatalf("Serve returned %v, want a *CloseError with a code", err)
		}
	})
}

// FuzzCloseFrame sends a close frame with an arbitrary payload to a server
// connection and checks what it does against RFC 6455 section 5.5.1 and
// 7.4, independently of how core reads it: an empty body is a close
// without status (answered with an empty close), one byte is a protocol
// error (1002), a code that may not be sent is 1002, a reason that is not
// UTF-8 is 1007, and anything else is the peer's close, echoed with its
// code.
func FuzzCloseFrame(f *testing.F) {
	body := func(code uint16, reason string) []byte {
		return append([]byte{byte(code >> 8), byte(code)}, reason...)
	}
	f.Add([]byte{})
	f.Add([]byte{3})
	f.Add(body(1000, "bye"))
	f.Add(body(1005, ""))
	f.Add(body(1006, ""))
	f.Add(body(1015, ""))
	f.Add(body(2999, ""))
	f.Add(body(3000, "app"))
	f.Add(body(4999, ""))
	f.Add(body(5000, ""))
	f.Add(body(1000, "\xff\xfe"))
	f.Add(body(1000, "\xe2\x82")) // a rune cut short
	f.Add(body(1001, strings.Repeat("é", 61)))

	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > 125 {
			p = p[:125] // longer is a different violation, covered by FuzzInboundFrames
		}
		var in bytes.Buffer
		_ = ws.WriteFrame(&in, ws.MaskFrame(ws.NewCloseFrame(p)))
		sc := &scriptConn{script: func([]byte) []byte { return in.Bytes() }}
		cfg, err := Config{Clock: clockwork.NewFakeClock()}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		c, err := newConn(sc, nil, nil, false, "", cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Serve(context.Background())
		var ce *CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("Serve returned %v", err)
		}
		reply, rerr := ws.ReadFrame(bytes.NewReader(sc.out()))
		if rerr != nil || reply.Header.OpCode != ws.OpClose || reply.Header.Masked {
			t.Fatalf("no unmasked close frame in answer: %v %+v", rerr, reply.Header)
		}
		gotCode, _ := ws.ParseCloseFrameData(reply.Payload)

		var wantCode ws.StatusCode
		var wantRemote bool
		code := ws.StatusCode(0)
		if len(p) >= 2 {
			code = ws.StatusCode(uint16(p[0])<<8 | uint16(p[1]))
		}
		okCode := code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999
		switch {
		case len(p) == 0:
			wantCode, wantRemote = ws.StatusNoStatusRcvd, true
			if len(reply.Payload) != 0 {
				t.Fatalf("an empty close answered with %q", reply.Payload)
			}
		case len(p) == 1, !okCode:
			wantCode = ws.StatusProtocolError
		case !utf8.Valid(p[2:]):
			wantCode = ws.StatusInvalidFramePayloadData
		default:
			wantCode, wantRemote = code, true
			if ce.Reason != string(p[2:]) {
				t.Fatalf("reason %q, want %q", ce.Reason, p[2:])
			}
		}
		if ce.Code != wantCode || ce.Remote != wantRemote {
			t.Fatalf("payload %q: cause %d remote=%v, want %d remote=%v", p, ce.Code, ce.Remote, wantCode, wantRemote)
		}
		if len(p) != 0 && gotCode != wantCode {
			t.Fatalf("payload %q: answered with code %d, want %d", p, gotCode, wantCode)
		}
	})
}

// FuzzClientInboundFrames is FuzzInboundFrames for the dialing side, which
// must refuse masked frames and accept unmasked ones.
func FuzzClientInboundFrames(f *testing.F) {
	seed := func(frames ...ws.Frame) []byte {
		var b bytes.Buffer
		for _, fr := range frames {
			_ = ws.WriteFrame(&b, fr)
		}
		return b.Bytes()
	}
	f.Add(seed(ws.NewTextFrame([]byte("hello"))))
	f.Add(seed(ws.NewFrame(ws.OpText, false, []byte("frag")), ws.NewPingFrame([]byte("p")), ws.NewFrame(ws.OpContinuation, true, []byte("ment"))))
	f.Add(seed(ws.NewBinaryFrame(make([]byte, 5000))))
	f.Add(seed(ws.MaskFrame(ws.NewTextFrame([]byte("masked")))))
	f.Add(seed(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "restart"))))
	f.Add(seed(ws.NewTextFrame([]byte{0xc3, 0x28})))

	f.Fuzz(func(t *testing.T, stream []byte) {
		const limit = 4096
		cfg, err := Config{MaxMessageSize: limit, ReadBufferSize: 512, Clock: clockwork.NewFakeClock()}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Handler = func(_ context.Context, fr Frame) error {
			if len(fr.Payload) > limit {
				t.Fatalf("handler got %d bytes over the %d limit", len(fr.Payload), limit)
			}
			if fr.Op == ws.OpText && !utf8.Valid(fr.Payload) {
				t.Fatalf("handler got invalid UTF-8 text %q", fr.Payload)
			}
			return nil
		}
		c, err := newConn(&streamConn{r: bytes.NewReader(stream)}, nil, nil, true, "", cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Serve(context.Background())
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code == 0 {
			t.Fatalf("Serve returned %v, want a *CloseError with a code", err)
		}
		if len(stream) >= 2 && stream[1]&0x80 != 0 {
			hsize := 2 + 4
			switch stream[1] & 0x7f {
			case 126:
				hsize += 2
			case 127:
				hsize += 8
			}
			if len(stream) >= hsize && ce.Code != ws.StatusProtocolError {
				t.Fatalf("a masked first frame closed with %d, want 1002", ce.Code)
			}
		}
	})
}

// FuzzRedactURL: whatever the input, a URL that parses comes out of
// RedactURL with every query value and any password replaced by Redacted,
// and no fragment; one that does not parse keeps nothing after '?' or '#'.
func FuzzRedactURL(f *testing.F) {
	f.Add("wss://example.com/ws?token=s3cret&room=1")
	f.Add("wss://user:pa55@example.com/ws")
	f.Add("ws://example.com/ws?access_token=a%20b;c=d#frag")
	f.Add("ws://[::1]:80/?x")
	f.Add("ws://host/%zz?token=s3cret")
	f.Add("ws://us:er@host@evil/p?q=1")
	f.Add("::://?#")
	f.Add("wss://h/ws?eyJhbGciOi.s3cret.sig")
	f.Add("wss://sk_live_s3cret@h/ws?auth&key")
	f.Fuzz(func(t *testing.T, raw string) {
		out := RedactURL(raw)
		if _, err := url.Parse(raw); err != nil {
			if i := strings.IndexAny(out, "?#"); i >= 0 && out[i:] != "?"+Redacted {
				t.Fatalf("RedactURL(%q) = %q keeps a query", raw, out)
			}
			return
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("RedactURL(%q) = %q, which does not parse: %v", raw, out, err)
		}
		if pw, ok := u.User.Password(); ok && pw != Redacted {
			t.Fatalf("RedactURL(%q) = %q keeps a password", raw, out)
		}
		if u.Fragment != "" {
			t.Fatalf("RedactURL(%q) = %q keeps the fragment", raw, out)
		}
		if u.User != nil {
			if _, ok := u.User.Password(); !ok && u.User.Username() != Redacted {
				t.Fatalf("RedactURL(%q) = %q keeps a user name without a password", raw, out)
			}
		}
		// Every query part is a short name with a redacted value, or
		// Redacted itself: nothing longer than a name survives.
		if u.RawQuery != "" {
			for _, part := range strings.Split(u.RawQuery, "&") {
				k, v, ok := strings.Cut(part, "=")
				if part == Redacted || (ok && v == Redacted && len(k) <= 3*32 && !strings.ContainsAny(k, "=&")) {
					continue
				}
				t.Fatalf("RedactURL(%q) = %q keeps the query part %q", raw, out, part)
			}
		}
	})
}
