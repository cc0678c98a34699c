package core

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
)

// Protocol violations, one value each, so that reporting one allocates
// nothing.
var (
	errReservedBits   = protocolError("reserved bits set without a negotiated extension")
	errReservedOpcode = protocolError("reserved opcode")
	errUnmasked       = protocolError("unmasked frame from a client")
	errMasked         = protocolError("masked frame from a server")
	errFragControl    = protocolError("fragmented control frame")
	errBigControl     = protocolError("control frame payload over 125 bytes")
	errNoStart        = protocolError("continuation frame without a message to continue")
	errInterleaved    = protocolError("new data message inside a fragmented message")
	errCloseLen1      = protocolError("close frame with a 1-byte payload")
	errCloseCode      = protocolError("close frame with a code that may not be sent")
)

// readChunk bounds how much the reassembly buffer grows before bytes arrive:
// memory follows what the peer actually sent, not what it declared.
const readChunk = 64 << 10

// readLoop reads frames until the connection ends and returns the error
// that ended the reading.
func (c *Conn) readLoop() error {
	br := c.br
	var fragOp ws.OpCode // opcode of the message being reassembled, 0 if none
	for {
		h, hsize, err := c.peekHeader(br)
		if err != nil {
			return c.readFailed(err)
		}
		if err := c.checkHeader(h, fragOp); err != nil {
			c.failHard(err, true)
			return err
		}
		if c.countFrames {
			c.activity.Add(1) // proof of life for a heartbeat: a counter, never a clock read
		}

		// Control frames and whole messages that fit the read buffer are
		// handled in place, without a copy.
		if h.OpCode.IsControl() || (h.Fin && fragOp == 0 && h.Length <= int64(br.Size()-hsize)) {
			if !h.OpCode.IsControl() && h.Length > c.maxMsg {
				return c.tooBig(h.Length)
			}
			n := hsize + int(h.Length)
			c.mayBlock(n)
			b, err := br.Peek(n)
			if err != nil {
				return c.readFailed(err)
			}
			p := b[hsize:]
			if h.Masked {
				readMask(&h, b, hsize)
				ws.Cipher(p, h.Mask, 0)
			}
			if br.Buffered() > n {
				// More input is already here: defer this frame's replies.
				// The flush comes when the read loop next needs bytes it does
				// not have (mayBlock), so a batch costs one write.
				c.setReadMore(true)
			}
			var stop bool
			if h.OpCode.IsControl() {
				stop = c.control(h.OpCode, p)
			} else {
				stop = c.deliver(h.OpCode, p)
			}
			if _, err := br.Discard(n); err != nil { // cannot fail: n bytes are buffered
				return c.readFailed(err)
			}
			if stop {
				return nil
			}
			continue
		}
		c.mayBlock(hsize)
		b, err := br.Peek(hsize)
		if err != nil {
			return c.readFailed(err)
		}
		readMask(&h, b, hsize)
		if _, err := br.Discard(hsize); err != nil {
			return c.readFailed(err)
		}

		// Fragments and big messages are reassembled in c.msg.
		if h.Length > c.maxMsg-int64(len(c.msg)) { // not len+Length: a peer-declared length near 2^63 would overflow
			return c.tooBig(satAdd(int64(len(c.msg)), h.Length))
		}
		start := len(c.msg)
		c.mayBlock(int(min(h.Length, int64(br.Size())+1))) // more than the buffer holds: always flush first
		c.msg, err = readAppend(br, c.msg, h.Length, c.maxMsg)
		if err != nil {
			return c.readFailed(err)
		}
		if h.Masked {
			ws.Cipher(c.msg[start:], h.Mask, 0)
		}
		if h.OpCode != ws.OpContinuation {
			fragOp = h.OpCode
		}
		if !h.Fin {
			continue
		}
		op := fragOp
		fragOp = 0
		if br.Buffered() > 0 {
			c.setReadMore(true)
		}
		stop := c.deliver(op, c.msg)
		if cap(c.msg) > readChunk {
			c.msg = nil // do not pin a big buffer on an idle connection
		} else {
			c.msg = c.msg[:0]
		}
		if stop {
			return nil
		}
	}
}

// satAdd adds two non-negative lengths, saturating instead of overflowing.
func satAdd(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

// readAppend reads n more bytes of a message into buf. The caller checked
// that len(buf)+n <= limit; buf grows as bytes arrive, doubling, but never
// past limit: a peer cannot make the buffer bigger than the biggest message
// it may send.
func readAppend(r io.Reader, buf []byte, n, limit int64) ([]byte, error) {
	for n > 0 {
		chunk := int(min(n, readChunk))
		if cap(buf)-len(buf) < chunk {
			grown := make([]byte, len(buf), min(max(2*int64(cap(buf)), int64(len(buf)+chunk)), limit))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		n -= int64(chunk)
	}
	return buf, nil
}

func (c *Conn) checkHeader(h ws.Header, fragOp ws.OpCode) error {
	switch {
	case h.Rsv != 0:
		return errReservedBits
	case h.OpCode.IsReserved():
		return errReservedOpcode
	case !c.client && !h.Masked:
		return errUnmasked
	case c.client && h.Masked:
		return errMasked
	}
	if h.OpCode.IsControl() {
		if !h.Fin {
			return errFragControl
		}
		if h.Length > maxControlPayload {
			return errBigControl
		}
		return nil
	}
	if h.OpCode == ws.OpContinuation {
		if fragOp == 0 {
			return errNoStart
		}
	} else if fragOp != 0 {
		return errInterleaved
	}
	return nil
}

func (c *Conn) tooBig(n int64) error {
	err := fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooBig, n, c.maxMsg)
	c.failHard(err, true)
	return err
}

// readFailed handles a read error: the peer went away, the socket was
// closed under us (Close's timer, a failed write), or the header was bad.
func (c *Conn) readFailed(err error) error {
	if errors.Is(err, ErrProtocol) {
		c.failHard(err, true)
		return err
	}
	c.failHard(err, false)
	return err
}

// deliver runs one whole message through the inbound chain. It reports
// whether the read loop must stop.
func (c *Conn) deliver(op ws.OpCode, p []byte) (stop bool) {
	// A close under way does not stop delivery: the peer may send data
	// until it has seen our close frame (RFC 6455 5.5.1), and what it sent
	// meanwhile it counts as sent. The handlers' ctx is done by then, and
	// their replies are refused once the close frame is out.
	if op == ws.OpText && !utf8.Valid(p) {
		c.failHard(fmt.Errorf("%w: text message", ErrInvalidUTF8), true)
		return true
	}
	if c.onPanic != nil {
		c.deliverRecovering(op, p)
		return false
	}
	if err := c.in(c.lctx, Frame{Op: op, Payload: p}); err != nil {
		c.fail(fmt.Errorf("tether: inbound: %w", err))
	}
	return false
}

// deliverRecovering is deliver's call of the inbound chain with a panic
// recovered (Config.OnPanic): one deferred call, no allocation unless a
// panic happens.
func (c *Conn) deliverRecovering(op ws.OpCode, p []byte) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			c.onPanic(c, v, stack)
			c.fail(fmt.Errorf("tether: inbound: %w", &PanicError{Value: v, Stack: stack}))
		}
	}()
	if err := c.in(c.lctx, Frame{Op: op, Payload: p}); err != nil {
		c.fail(fmt.Errorf("tether: inbound: %w", err))
	}
}

// control handles a ping, pong or close frame. It reports whether the read
// loop must stop.
func (c *Conn) control(op ws.OpCode, p []byte) (stop bool) {
	switch op {
	case ws.OpPing:
		for _, h := range c.controlHandlers {
			h(op, p)
		}
		if !c.stopping.Load() {
			_ = c.writeFrame(c.lctx, ws.OpPong, p, false)
		}
		return false
	case ws.OpPong:
		for _, h := range c.controlHandlers {
			h(op, p)
		}
		return false
	}

	// Close.
	code, reason := ws.StatusNoStatusRcvd, ""
	switch {
	case len(p) == 1:
		c.failHard(errCloseLen1, true)
		return true
	case len(p) >= 2:
		code = ws.StatusCode(binary.BigEndian.Uint16(p))
		reason = string(p[2:])
		if !validSendCode(code) {
			c.failHard(fmt.Errorf("%w: code %d", errCloseCode, code), true)
			return true
		}
		if !utf8.ValidString(reason) {
			c.failHard(fmt.Errorf("%w: close reason", ErrInvalidUTF8), true)
			return true
		}
	}
	// beginClose arms the close timer even here: answering takes the write
	// lock, which a writer stuck on a peer that stopped reading may hold.
	reply, _ := c.beginClose(&CloseError{Code: code, Reason: reason, Remote: true}, nil, true)
	if !reply {
		c.mu.Lock()
		if !c.timedOut {
			c.handshake = true // the peer answered our close frame in time
		}
		c.mu.Unlock()
	}
	if reply {
		echo := code
		if code == ws.StatusNoStatusRcvd {
			echo = 0 // answer an empty close with an empty close
		}
		c.writeClose(echo, "")
	}
	return true
}

// publishIn wraps the user's handler with the MessageIn event, when the
// connection has a bus.
func (c *Conn) publishIn(h Handler) Handler {
	if h == nil {
		h = discard
	}
	if c.bus == nil {
		return h
	}
	return func(ctx context.Context, f Frame) error {
		if events.Enabled[events.MessageIn](c.bus) {
			events.Publish(c.bus, events.MessageIn{ConnID: c.id, Op: f.Op, Payload: clone(f.Payload), At: c.clock.Now()})
		}
		return h(ctx, f)
	}
}

// mayBlock flushes deferred replies before a read that needs more bytes
// than are buffered, and so may block on the socket.
func (c *Conn) mayBlock(need int) {
	if c.readMore && c.br.Buffered() < need {
		c.setReadMore(false)
	}
}
