package core

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
)

const maxControlPayload = 125

// Write sends one data message, op ws.OpText or ws.OpBinary, through the
// outbound middleware chain. It is safe to call from any goroutine; frames
// of concurrent writers never interleave.
//
// A nil error means the frame was accepted into the connection's write
// buffer; the buffer is flushed as soon as no other write is pending, so
// concurrent writers share one system call. Replies written from an inbound
// handler with the handler's ctx are flushed once the read loop has handled
// every frame already received (before it waits for more), so a batch of
// pipelined messages costs one write to the socket.
//
// ctx is checked before the frame is queued. A write blocked because the
// peer stopped reading is unblocked when the connection closes: by Close
// (bounded by Config.CloseTimeout), by a heartbeat's timeout, or by the
// peer. Text payloads are not checked for UTF-8: sending valid text is the
// caller's job.
//
// An error from an outbound middleware is returned as is and leaves the
// connection open, unless it carries a *CloseError, which closes the
// connection with that code. After the connection started closing, Write
// returns an error matching ErrClosed.
func (c *Conn) Write(ctx context.Context, op ws.OpCode, p []byte) error {
	if ctx == nil {
		return errNilContext
	}
	if op != ws.OpText && op != ws.OpBinary {
		return fmt.Errorf("%w: opcode %d", ErrBadOpcode, op)
	}
	err := c.out(ctx, Frame{Op: op, Payload: p})
	if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		var ce *CloseError
		if errors.As(err, &ce) {
			c.fail(err)
		} else {
			c.publishError(err, false)
		}
	}
	return err
}

// WriteText sends s as one text message; see Write.
func (c *Conn) WriteText(ctx context.Context, s string) error {
	return c.Write(ctx, ws.OpText, []byte(s))
}

// Ping sends a ping control frame with payload (at most 125 bytes). The
// peer's pong reaches the control handlers registered with OnControl.
func (c *Conn) Ping(ctx context.Context, payload []byte) error {
	if ctx == nil {
		return errNilContext
	}
	if len(payload) > maxControlPayload {
		return fmt.Errorf("%w: ping of %d bytes", ErrControlTooBig, len(payload))
	}
	return c.writeFrame(ctx, ws.OpPing, payload, false)
}

// writeData is the innermost outbound handler.
func (c *Conn) writeData(ctx context.Context, f Frame) error {
	if f.Op != ws.OpText && f.Op != ws.OpBinary {
		return fmt.Errorf("%w: opcode %d from an outbound middleware", ErrBadOpcode, f.Op)
	}
	if ctx == nil {
		return errNilContext
	}
	publish := c.bus != nil && events.Enabled[events.MessageOut](c.bus)
	if err := c.writeFrame(ctx, f.Op, f.Payload, publish); err != nil {
		return err
	}
	if publish {
		events.Publish(c.bus, events.MessageOut{ConnID: c.id, Op: f.Op, Payload: clone(f.Payload), At: c.clock.Now()})
		c.eventDone()
	}
	return nil
}

func (c *Conn) eventDone() {
	c.wmu.Lock()
	c.outEvents--
	if c.outEvents == 0 {
		c.outEventsDone.Broadcast()
	}
	c.wmu.Unlock()
}

func clone(p []byte) []byte { return append([]byte(nil), p...) }

// writeFrame writes one whole frame through the single writer and decides
// when to flush:
//
//   - a write from the read loop (ctx is the handlers' ctx) while more input
//     is buffered leaves the bytes in the buffer; the read loop flushes
//     before it waits for input it does not have (mayBlock);
//   - any other write flushes unless another writer is already waiting for
//     the lock, in which case the last of them flushes for all.
//
// With publish, a successful write counts a MessageOut event to come, which
// the caller publishes after the lock is released (no event is published
// under a connection lock) and then discounts; Disconnected waits for the
// count to reach zero, so that it comes after every MessageOut.
func (c *Conn) writeFrame(ctx context.Context, op ws.OpCode, p []byte, publish bool) error {
	sc, loop := ctx.(*serveCtx) // cheaper than comparing interfaces
	loop = loop && sc == c.lctx
	if !loop {
		if ctx.Done() != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c.writers.Add(1)
	}
	c.wmu.Lock()
	var err error
	if c.werr != nil || c.closeSent || (!loop && c.stopping.Load()) {
		err = errClosedForWrite
	}
	if err == nil {
		err = c.writeFrameLocked(op, p)
	}
	flush := false
	if loop {
		flush = !c.readMore
	} else {
		flush = c.writers.Add(-1) == 0
	}
	if err == nil {
		if flush {
			err = c.flushLocked()
			if err == nil && !loop {
				c.releaseWriterLocked()
			}
		} else {
			c.dirty = true
		}
	}
	broken := err != nil && err != errClosedForWrite && c.werr == nil
	if broken {
		c.werr = err
	}
	if (err == nil && publish) || broken {
		c.outEvents++ // a MessageOut, or brokenWrite's Error, to come before Disconnected
	}
	c.wmu.Unlock()
	if broken {
		return c.brokenWrite(err)
	}
	return err
}

// brokenWrite ends the connection after the socket refused a write whose
// Error event writeFrame counted, so that Disconnected waits for it.
func (c *Conn) brokenWrite(err error) error {
	c.publishError(fmt.Errorf("tether: write failed: %w", err), true)
	c.eventDone() // before failHard: a finish on this goroutine waits for the count
	c.failHard(err, false)
	return fmt.Errorf("%w: write failed: %w", ErrClosed, err)
}

// writeFailed ends the connection after the socket refused a write.
func (c *Conn) writeFailed(err error) {
	c.publishError(fmt.Errorf("tether: write failed: %w", err), true)
	c.failHard(err, false)
}

var errNilContext = fmt.Errorf("%w: nil context", ErrInvalidConfig)

var errClosedForWrite = fmt.Errorf("%w: the connection is closing", ErrClosed)

// writeClose sends a close frame, once. code 0 sends an empty body. It
// always flushes.
func (c *Conn) writeClose(code ws.StatusCode, reason string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent || c.werr != nil {
		return c.werr
	}
	c.closeSent = true
	var body [maxControlPayload]byte
	n := 0
	if code != 0 {
		binary.BigEndian.PutUint16(body[:2], uint16(code))
		n = 2 + copy(body[2:], reason)
	}
	err := c.writeFrameLocked(ws.OpClose, body[:n])
	if err == nil {
		err = c.flushLocked()
	}
	if err != nil {
		c.werr = err
	}
	return err
}

func (c *Conn) flushLocked() error {
	c.dirty = false
	if c.bw == nil {
		return nil
	}
	return c.bw.Flush()
}

// writerPool holds write buffers of the default size that connections gave
// back while they had nothing to send.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, DefaultWriteBufferSize) }}

// writerLocked returns the write buffer, taking one from writerPool if the
// connection gave its own back. wmu is held.
func (c *Conn) writerLocked() *bufio.Writer {
	if c.bw == nil {
		c.bw = writerPool.Get().(*bufio.Writer)
		c.bw.Reset(c.nc)
	}
	return c.bw
}

// releaseWriterLocked gives an empty write buffer of the default size back
// to writerPool; the next write takes one again. It is called after a flush
// by a writer other than the read loop (a heartbeat's ping, an application
// goroutine) that no other writer was waiting behind: that flush was a
// system call, next to which a pool round trip costs little, and an idle
// connection then holds no write buffer between its heartbeats. The read
// loop's replies keep the buffer: they are the per-frame path. wmu is held.
func (c *Conn) releaseWriterLocked() {
	if c.bw == nil || c.bw.Buffered() > 0 || c.bw.Size() != DefaultWriteBufferSize {
		return
	}
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.bw = nil
}

// writeFrameLocked puts header and payload into the write buffer, in one
// copy when they fit, masking the payload on the client side without
// touching the caller's slice.
func (c *Conn) writeFrameLocked(op ws.OpCode, p []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(p))}
	if c.client {
		h.Masked = true
		binary.LittleEndian.PutUint32(h.Mask[:], rand.Uint32())
	}
	bw := c.writerLocked()
	if bw.Available() < ws.MaxHeaderSize+len(p) && bw.Buffered() > 0 && len(p) < bw.Size()-ws.MaxHeaderSize {
		// Make room so that the frame goes out whole in one write.
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	buf := appendHeader(bw.AvailableBuffer(), h)
	n := min(len(p), cap(buf)-len(buf))
	hl := len(buf)
	buf = append(buf, p[:n]...)
	if c.client {
		ws.Cipher(buf[hl:], h.Mask, 0)
	}
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	p = p[n:]
	if len(p) == 0 {
		return nil
	}
	if !c.client {
		_, err := bw.Write(p) // bigger than the buffer: written straight through
		return err
	}
	for pos := n; len(p) > 0; {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()
		m := min(len(p), cap(buf))
		buf = append(buf, p[:m]...)
		ws.Cipher(buf, h.Mask, pos)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
		pos += m
		p = p[m:]
	}
	return nil
}

// setReadMore tells the writer whether the read loop has more input
// buffered. When it has none left, replies it deferred are flushed.
func (c *Conn) setReadMore(more bool) {
	if more == c.readMore { // only the read loop writes readMore
		return
	}
	c.wmu.Lock()
	c.readMore = more
	var err error
	if !more && c.dirty && c.werr == nil {
		err = c.flushLocked()
		if err != nil {
			c.werr = err
		}
	}
	c.wmu.Unlock()
	if err != nil {
		c.writeFailed(err)
	}
}
