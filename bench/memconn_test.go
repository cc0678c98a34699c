package bench

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// memConn is an in-memory net.Conn, the same peer for every library: Read
// serves a prefix (a handshake), then blocks until start is called, then
// serves n identical encoded frames one per Read, then io.EOF. Write counts
// calls and bytes and discards them. As a server's socket it serves a
// client's upgrade request and masked frames; as a client's socket it
// answers the client's upgrade request itself (respond) and serves
// unmasked server frames. No syscall: what is measured is the library.
type memConn struct {
	frame   []byte
	left    int
	pending []byte // rest of a frame or of the prefix a short Read did not take
	gate    chan struct{}
	started bool

	respond  bool   // answer an upgrade request written to it (client side)
	req      []byte // the request so far, guarded by mu
	resp     []byte // the answer, set before upgraded is closed
	gotResp  bool   // Read took resp
	upgraded chan struct{}
	isUp     atomic.Bool // upgraded is closed: the fast check on every Write
	upOnce   sync.Once

	mu       sync.Mutex // Write is called from the library's writer, Read from its reader
	writes   atomic.Int64
	nwritten atomic.Int64
	closed   atomic.Bool
	closedCh chan struct{} // closed by the first Close
	closeOne sync.Once
}

// newServerMemConn is a server's socket: the client's upgrade request,
// then n masked binary frames of size bytes.
func newServerMemConn(size, n int) *memConn {
	return newMemConn(upgradeRequest, mustFrame(size, true), n, false)
}

// newClientMemConn is a client's socket: it answers the client's upgrade
// request, then serves n unmasked binary frames of size bytes.
func newClientMemConn(size, n int) *memConn {
	return newMemConn(nil, mustFrame(size, false), n, true)
}

func newMemConn(prefix, frame []byte, n int, respond bool) *memConn {
	return &memConn{frame: frame, left: n, pending: prefix, gate: make(chan struct{}), respond: respond, upgraded: make(chan struct{}), closedCh: make(chan struct{})}
}

func mustFrame(size int, masked bool) []byte {
	f := ws.NewBinaryFrame(make([]byte, size))
	if masked {
		f = ws.MaskFrame(f)
	}
	b, err := ws.CompileFrame(f)
	if err != nil {
		panic(err) // cannot happen: a valid frame
	}
	return b
}

// start lets Read serve the frames.
func (m *memConn) start() { close(m.gate) }

// Read implements net.Conn.
func (m *memConn) Read(p []byte) (int, error) {
	if m.respond && !m.gotResp { // the client reads the answer to its request
		<-m.upgraded
		m.pending, m.gotResp = m.resp, true
	}
	if len(m.pending) > 0 {
		n := copy(p, m.pending)
		m.pending = m.pending[n:]
		return n, nil
	}
	if !m.started {
		<-m.gate
		m.started = true
	}
	if m.left == 0 || m.closed.Load() {
		return 0, io.EOF
	}
	n := copy(p, m.frame)
	if n < len(m.frame) {
		m.pending = m.frame[n:]
	}
	m.left--
	return n, nil
}

// Write implements net.Conn: it counts and discards, except the handshake.
func (m *memConn) Write(p []byte) (int, error) {
	if m.closed.Load() {
		return 0, net.ErrClosed
	}
	if !m.isUp.Load() {
		if m.respond {
			m.mu.Lock()
			m.req = append(m.req, p...)
			done := bytes.Contains(m.req, []byte("\r\n\r\n"))
			if done {
				m.resp = handshakeResponse(m.req)
			}
			m.mu.Unlock()
			if !done {
				return len(p), nil
			}
		}
		m.upOnce.Do(func() { m.isUp.Store(true); close(m.upgraded) })
		return len(p), nil
	}
	m.writes.Add(1)
	m.nwritten.Add(int64(len(p)))
	return len(p), nil
}

// handshakeResponse is a server's 101 answer to an upgrade request.
func handshakeResponse(req []byte) []byte {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
	if err != nil {
		return []byte("HTTP/1.1 400 Bad Request\r\n\r\n")
	}
	return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// Close implements net.Conn; later Reads return io.EOF.
func (m *memConn) Close() error {
	m.closed.Store(true)
	m.closeOne.Do(func() { close(m.closedCh) })
	return nil
}

// LocalAddr implements net.Conn.
func (m *memConn) LocalAddr() net.Addr { return memAddr{} }

// RemoteAddr implements net.Conn.
func (m *memConn) RemoteAddr() net.Addr { return memAddr{} }

// SetDeadline implements net.Conn; deadlines are ignored.
func (m *memConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline implements net.Conn; deadlines are ignored.
func (m *memConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline implements net.Conn; deadlines are ignored.
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// upgradeRequest is a minimal valid WebSocket upgrade request.
var upgradeRequest = []byte("GET / HTTP/1.1\r\nHost: mem\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

// hijackWriter is the http.ResponseWriter a net/http server hands to a
// handler, reduced to what an upgrade needs: headers, a status line written
// on Hijack (coder/websocket sets the status before hijacking), and Hijack.
// It lets the http-handler peers serve an in-memory conn.
type hijackWriter struct {
	nc     net.Conn
	br     *bufio.Reader
	header http.Header
	status int
}

func (w *hijackWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *hijackWriter) WriteHeader(code int) { w.status = code }

func (w *hijackWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.nc.Write(p)
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status != 0 {
		var b bytes.Buffer
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", w.status, http.StatusText(w.status))
		_ = w.Header().Write(&b)
		b.WriteString("\r\n")
		if _, err := w.nc.Write(b.Bytes()); err != nil {
			return nil, nil, err
		}
	}
	return w.nc, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.nc, 4096)), nil
}

// serveHTTPConn reads the request from nc and hands it to h with a
// hijackable writer, as net/http would.
func serveHTTPConn(nc net.Conn, h http.Handler) {
	br := bufio.NewReaderSize(nc, 4096)
	r, err := http.ReadRequest(br)
	if err != nil {
		_ = nc.Close()
		return
	}
	h.ServeHTTP(&hijackWriter{nc: nc, br: br}, r)
}
