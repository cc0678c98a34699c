package core

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// DefaultMaxHandshakeBytes bounds the opening handshake a peer sends (the
// client's request line and headers on Accept, the server's status line
// and headers on Dial) when Upgrader.MaxHandshakeBytes or
// Dialer.MaxHandshakeBytes is zero.
const DefaultMaxHandshakeBytes = 64 << 10 // 64 KiB

// ErrHandshakeTooBig: the peer's opening handshake exceeded
// MaxHandshakeBytes. gobwas/ws reads a header line of any length into
// memory; without this bound a peer could make a server (or a client)
// buffer whatever it sends until the handshake timeout. Accept answers it
// with HTTP 431.
var ErrHandshakeTooBig = errors.New("tether: opening handshake too big")

// handshakeReader lets at most left bytes through, then fails with
// ErrHandshakeTooBig. A negative left is no limit: the handshake is over.
type handshakeReader struct {
	r    io.Reader
	left int
}

func (h *handshakeReader) Read(p []byte) (int, error) {
	if h.left < 0 {
		return h.r.Read(p)
	}
	if h.left == 0 {
		return 0, ErrHandshakeTooBig
	}
	if len(p) > h.left {
		p = p[:h.left]
	}
	n, err := h.r.Read(p)
	h.left -= n
	return n, err
}

// handshakeConn is a net.Conn whose reads are bounded until the handshake
// is over (lift). It is the dialing side's wrapper: gobwas may keep reading
// through it with the buffer it returns, so the limit is lifted, not the
// wrapper removed.
//
// Once poisoned (the handshake timer fired), its deadlines stay in the
// past: gobwas clears the deadline of a connection whose ctx cannot end
// right after it dialed, which would otherwise undo the poison of a timer
// that fired in between.
type handshakeConn struct {
	net.Conn
	hr       handshakeReader
	mu       sync.Mutex // orders poison against the deadline setters
	poisoned bool
}

func (h *handshakeConn) Read(p []byte) (int, error) { return h.hr.Read(p) }

// poison makes every read and write of the handshake fail at once.
func (h *handshakeConn) poison() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.poisoned = true
	_ = h.Conn.SetDeadline(aLongTimeAgo) // wall time: a deadline in the past aborts the blocked handshake read or write
}

// deadline returns t, or a time in the past once poisoned. mu is held.
func (h *handshakeConn) deadline(t time.Time) time.Time {
	if h.poisoned {
		return aLongTimeAgo // wall time: see poison
	}
	return t
}

// SetDeadline sets the deadlines, unless the connection is poisoned.
func (h *handshakeConn) SetDeadline(t time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Conn.SetDeadline(h.deadline(t))
}

// SetReadDeadline sets the read deadline, unless the connection is poisoned.
func (h *handshakeConn) SetReadDeadline(t time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Conn.SetReadDeadline(h.deadline(t))
}

// SetWriteDeadline sets the write deadline, unless the connection is
// poisoned.
func (h *handshakeConn) SetWriteDeadline(t time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Conn.SetWriteDeadline(h.deadline(t))
}

// lift ends the limit. It is called on the dialing goroutine once the
// handshake succeeded, before the connection is handed to anyone else.
func (h *handshakeConn) lift() { h.hr.left = -1 }

func handshakeLimit(n int) int {
	if n == 0 {
		return DefaultMaxHandshakeBytes
	}
	return n
}
