// Package memconn provides in-memory net.Conns for benchmarks and tests:
// no syscalls, so what is measured is the code above the socket.
package memconn

import (
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Frames is a net.Conn whose Read serves an optional prefix (a handshake
// request) and then a stream of identical masked client frames, n of them,
// then io.EOF; Write counts calls and bytes and discards them. It is not
// safe for concurrent Reads.
type Frames struct {
	frame    []byte // one encoded frame
	left     int    // frames still to serve
	batch    int    // frames per Read: 1 = request/response, >1 = pipelined
	pending  []byte // rest of a frame (or the prefix) a short Read did not take
	writes   atomic.Int64
	nwritten atomic.Int64
}

// NewFrames returns a Frames serving prefix, then n masked binary frames of
// payload bytes each, batch frames per Read.
func NewFrames(prefix []byte, payload, n, batch int) *Frames {
	bts, err := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame(make([]byte, payload))))
	if err != nil {
		panic(err) // cannot happen: a valid frame
	}
	return &Frames{frame: bts, left: n, batch: max(batch, 1), pending: prefix}
}

// Read implements net.Conn.
func (m *Frames) Read(p []byte) (int, error) {
	n := 0
	if len(m.pending) > 0 {
		n = copy(p, m.pending)
		m.pending = m.pending[n:]
		return n, nil
	}
	for i := 0; i < m.batch && m.left > 0 && n < len(p); i++ {
		c := copy(p[n:], m.frame)
		if c < len(m.frame) {
			m.pending = m.frame[c:]
		}
		n += c
		m.left--
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write implements net.Conn: it counts and discards.
func (m *Frames) Write(p []byte) (int, error) {
	m.writes.Add(1)
	m.nwritten.Add(int64(len(p)))
	return len(p), nil
}

// Writes returns how many Write calls were made.
func (m *Frames) Writes() int64 { return m.writes.Load() }

// Written returns how many bytes were written.
func (m *Frames) Written() int64 { return m.nwritten.Load() }

// Close implements net.Conn; it does nothing.
func (m *Frames) Close() error { return nil }

// LocalAddr implements net.Conn.
func (m *Frames) LocalAddr() net.Addr { return Addr{} }

// RemoteAddr implements net.Conn.
func (m *Frames) RemoteAddr() net.Addr { return Addr{} }

// SetDeadline implements net.Conn; deadlines are ignored.
func (m *Frames) SetDeadline(time.Time) error { return nil }

// SetReadDeadline implements net.Conn; deadlines are ignored.
func (m *Frames) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline implements net.Conn; deadlines are ignored.
func (m *Frames) SetWriteDeadline(time.Time) error { return nil }

// Addr is the address of an in-memory connection.
type Addr struct{}

// Network returns "mem".
func (Addr) Network() string { return "mem" }

// String returns "mem".
func (Addr) String() string { return "mem" }

// UpgradeRequest is a minimal valid WebSocket upgrade request, for a server
// that accepts a Frames with core.Upgrader.Accept.
var UpgradeRequest = []byte("GET / HTTP/1.1\r\nHost: mem\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
