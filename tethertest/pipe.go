package tethertest

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
)

// Direction names one or both directions of the in-memory network, for
// the faults that can hit one way only.
type Direction uint8

const (
	// ToServer is the direction from the client to the server.
	ToServer Direction = 1 << iota
	// ToClient is the direction from the server to the client.
	ToClient
	// Both is both directions.
	Both = ToServer | ToClient
)

// ErrReset is the error a connection's reads and writes return after the
// network dropped it (Server.Drop): the in-memory counterpart of a TCP
// reset. It matches syscall.ECONNRESET with errors.Is.
var ErrReset = &net.OpError{Op: "read", Net: "memory", Err: os.NewSyscallError("read", syscall.ECONNRESET)}

// bufferSize is how many bytes a direction holds before its writer blocks:
// a socket's send and receive buffers together, roughly.
const bufferSize = 256 << 10

// chunk is bytes in flight, readable from at on the network's clock.
type chunk struct {
	b  []byte
	at time.Time
}

// half is one direction of a pipe.
type half struct {
	chunks   []chunk
	buffered int  // bytes in chunks
	eof      bool // the writer closed its end: EOF once drained
	parked   bool // the reader is waiting in Read
	// rearm is the clock timer that wakes the reader when the first
	// delayed chunk becomes readable; nil when none is armed.
	rearm clockwork.Timer
	// deadline timers (wall time, as a socket's)
	readDeadline  time.Time
	writeDeadline time.Time
}

// pipe is one in-memory connection: two halves under one lock.
type pipe struct {
	net    *network
	mu     sync.Mutex
	cond   *sync.Cond
	halves [2]half // [0]: to the server, [1]: to the client
	reset  bool    // dropped by the network: both ends fail
	// handshaking is true while the server's goroutine has not yet
	// counted the handshake's outcome
	handshaking bool
	// closed[i] is true once end i closed (0: client end, 1: server end)
	closed [2]bool
	timers [2][2]*time.Timer // deadline wake-ups per end, [0] read [1] write, wall time
	ends   [2]*endpoint
}

func newPipe(n *network) *pipe {
	p := &pipe{net: n}
	p.cond = sync.NewCond(&p.mu)
	p.ends[0] = &endpoint{p: p, side: 0}
	p.ends[1] = &endpoint{p: p, side: 1}
	return p
}

// endpoint is one end of a pipe as a net.Conn. side 0 is the client's end:
// it writes to the server (half 0) and reads from half 1.
type endpoint struct {
	p    *pipe
	side int
	wmu  sync.Mutex // held across a whole Write: concurrent Writes do not interleave
}

var _ net.Conn = (*endpoint)(nil)

func (e *endpoint) in() *half  { return &e.p.halves[1-e.side] }
func (e *endpoint) out() *half { return &e.p.halves[e.side] }

// dirOf is the direction an end writes in.
func dirOf(side int) Direction {
	if side == 0 {
		return ToServer
	}
	return ToClient
}

// Read reads what the peer wrote, once it is readable on the network's
// clock. It blocks until data, EOF, a reset, Close or the read deadline.
func (e *endpoint) Read(b []byte) (int, error) {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	h := e.in()
	for {
		switch {
		case p.closed[e.side]:
			return 0, net.ErrClosed
		case p.reset:
			return 0, ErrReset
		case deadlinePassed(h.readDeadline):
			return 0, os.ErrDeadlineExceeded
		}
		if len(b) == 0 {
			return 0, nil
		}
		if n := e.readReady(h, b); n > 0 {
			p.net.changed()
			return n, nil
		}
		if h.buffered == 0 && h.eof {
			return 0, io.EOF
		}
		h.parked = true
		p.net.changed()
		p.cond.Wait()
		h.parked = false
	}
}

// readReady copies the readable bytes at the head of h into b. When the
// head is still in flight (a delay), it arms a timer on the clock that
// wakes the reader when it lands.
func (e *endpoint) readReady(h *half, b []byte) int {
	n := 0
	now := e.p.net.clock.Now()
	for len(h.chunks) > 0 && n < len(b) {
		c := &h.chunks[0]
		if c.at.After(now) {
			if n == 0 && h.rearm == nil {
				p := e.p
				h.rearm = p.net.clock.AfterFunc(c.at.Sub(now), func() {
					p.mu.Lock()
					h.rearm = nil
					p.cond.Broadcast()
					p.mu.Unlock()
				})
			}
			break
		}
		k := copy(b[n:], c.b)
		n += k
		c.b = c.b[k:]
		h.buffered -= k
		if len(c.b) == 0 {
			h.chunks[0] = chunk{}
			h.chunks = h.chunks[1:]
		}
	}
	if n > 0 {
		p := e.p
		p.cond.Broadcast() // room for a blocked writer
	}
	return n
}

// Write hands b to the network: it is dropped if the network black-holes
// this direction, otherwise readable by the peer after the network's delay.
// It blocks while the direction holds bufferSize bytes.
func (e *endpoint) Write(b []byte) (int, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	h := e.out()
	if len(b) == 0 {
		switch {
		case p.closed[e.side]:
			return 0, net.ErrClosed
		case p.reset:
			return 0, ErrReset
		}
		return 0, nil
	}
	written := 0
	for written < len(b) {
		switch {
		case p.closed[e.side]:
			return written, net.ErrClosed
		case p.reset:
			return written, ErrReset
		case p.closed[1-e.side] || h.eof:
			return written, &net.OpError{Op: "write", Net: "memory", Err: os.NewSyscallError("write", syscall.EPIPE)}
		case deadlinePassed(h.writeDeadline):
			return written, os.ErrDeadlineExceeded
		}
		hole, delay := p.net.route(dirOf(e.side))
		if hole {
			p.net.count(dirOf(e.side), len(b)-written, true)
			return len(b), nil
		}
		room := bufferSize - h.buffered
		if room <= 0 {
			p.cond.Wait()
			continue
		}
		k := min(room, len(b)-written)
		h.chunks = append(h.chunks, chunk{b: append([]byte(nil), b[written:written+k]...), at: p.net.clock.Now().Add(delay)})
		h.buffered += k
		written += k
		p.net.count(dirOf(e.side), k, false)
		p.cond.Broadcast()
		p.net.changed()
	}
	return written, nil
}

// Close closes this end: its reads and writes fail with net.ErrClosed and
// the peer reads EOF after what was already written.
func (e *endpoint) Close() error {
	p := e.p
	p.mu.Lock()
	if p.closed[e.side] {
		p.mu.Unlock()
		return net.ErrClosed
	}
	p.closed[e.side] = true
	e.out().eof = true
	p.stopTimersLocked()
	p.cond.Broadcast()
	both := p.closed[0] && p.closed[1] && !p.handshaking
	p.mu.Unlock()
	p.net.changed()
	if both {
		p.net.forget(p)
	}
	return nil
}

// stopTimersLocked stops the timers that only a live pipe needs, once
// both ends are closed or the pipe was reset.
func (p *pipe) stopTimersLocked() {
	if !(p.closed[0] && p.closed[1]) && !p.reset {
		return
	}
	for i := range p.halves {
		if t := p.halves[i].rearm; t != nil {
			t.Stop()
			p.halves[i].rearm = nil
		}
	}
	for i := range p.timers {
		for j, t := range p.timers[i] {
			if t != nil {
				t.Stop()
				p.timers[i][j] = nil
			}
		}
	}
}

// drop resets the pipe: both ends fail at once and what was in flight is
// lost, as when a network path dies with a reset.
func (p *pipe) drop() {
	p.mu.Lock()
	p.reset = true
	for i := range p.halves {
		p.halves[i].chunks, p.halves[i].buffered = nil, 0
	}
	p.stopTimersLocked()
	p.cond.Broadcast()
	p.mu.Unlock()
	p.net.changed()
}

// atRest reports whether nothing can move on this pipe without the clock:
// each end is closed, or its reader waits with nothing readable.
func (p *pipe) atRest(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.handshaking && !(p.halves[0].parked && !p.closed[1]) {
		return false // the server is working on the handshake, or counting it
	}
	if p.reset {
		// Nothing flows any more; what is left is each owner noticing and
		// closing its end (tether closes both).
		return p.closed[0] && p.closed[1]
	}
	for side := range 2 {
		if p.closed[side] {
			continue
		}
		h := &p.halves[1-side] // what this end reads
		if !h.parked || (h.eof && h.buffered == 0) {
			return false
		}
		if len(h.chunks) > 0 && !h.chunks[0].at.After(now) {
			return false
		}
	}
	return true
}

// LocalAddr is a fixed in-memory address.
func (e *endpoint) LocalAddr() net.Addr { return addr(e.side) }

// RemoteAddr is the peer's fixed in-memory address.
func (e *endpoint) RemoteAddr() net.Addr { return addr(1 - e.side) }

type memAddr string

func (a memAddr) Network() string { return "memory" }
func (a memAddr) String() string  { return string(a) }

func addr(side int) net.Addr {
	if side == 0 {
		return memAddr("client")
	}
	return memAddr("server")
}

// SetDeadline sets both deadlines; see SetReadDeadline.
func (e *endpoint) SetDeadline(t time.Time) error {
	if err := e.SetReadDeadline(t); err != nil {
		return err
	}
	return e.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline. Like a socket's, a deadline is
// wall time (inside a testing/synctest bubble, the bubble's time); a
// deadline in the past fails blocked and future reads at once.
func (e *endpoint) SetReadDeadline(t time.Time) error {
	return e.setDeadline(&e.in().readDeadline, 0, t)
}

// SetWriteDeadline sets the write deadline; see SetReadDeadline.
func (e *endpoint) SetWriteDeadline(t time.Time) error {
	return e.setDeadline(&e.out().writeDeadline, 1, t)
}

func (e *endpoint) setDeadline(d *time.Time, which int, t time.Time) error {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed[e.side] {
		return net.ErrClosed
	}
	*d = t
	if old := p.timers[e.side][which]; old != nil {
		old.Stop()
		p.timers[e.side][which] = nil
	}
	if !t.IsZero() {
		if wait := time.Until(t); wait > 0 { // wall time: a socket deadline is wall time by nature
			p.timers[e.side][which] = time.AfterFunc(wait, func() { // wall time: as above
				p.mu.Lock()
				p.cond.Broadcast()
				p.mu.Unlock()
			})
		}
	}
	p.cond.Broadcast()
	return nil
}

func deadlinePassed(t time.Time) bool {
	return !t.IsZero() && !time.Now().Before(t) // wall time: a socket deadline is wall time by nature
}

func (p *pipe) handshakeDone() {
	p.mu.Lock()
	p.handshaking = false
	both := p.closed[0] && p.closed[1]
	p.mu.Unlock()
	if both {
		p.net.forget(p)
	}
	p.net.changed()
}
