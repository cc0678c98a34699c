package core

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

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
// ctx bounds the write: if it ends while Write waits on the socket (a peer
// that stopped reading, or another writer stuck on it), the connection is
// aborted, since a frame may have been half written, and Write returns an
// error matching both ErrClosed and ctx's error. Once a close is under
// way, the close timer bounds the write instead, so that the close frame
// still goes out after it. A write blocked on the
// socket is also released when the connection closes: by Close (bounded by
// Config.CloseTimeout), by a heartbeat's timeout, or by the peer. Text
// payloads are not checked for UTF-8: sending valid text is the caller's
// job.
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
	var err error
	if c.out == nil {
		err = c.writeData(ctx, Frame{Op: op, Payload: p})
	} else {
		err = c.out(ctx, Frame{Op: op, Payload: p})
	}
	if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		var ce *CloseError
		if errors.As(err, &ce) {
			c.fail(err)
		} else {
			c.reportError(err, false)
		}
	}
	return err
}

// WriteText sends s as one text message; see Write.
func (c *Conn) WriteText(ctx context.Context, s string) error {
	return c.Write(ctx, ws.OpText, []byte(s))
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
	err := c.writeFrame(ctx, f.Op, f.Payload, publish)
	if err == errNoEvent {
		return nil
	}
	if err != nil {
		return err
	}
	if publish {
		events.Publish(c.bus, events.MessageOut{ConnID: c.id, Op: f.Op, Payload: clone(f.Payload), At: c.clock.Now()})
		c.release()
	}
	return nil
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
// With publish, a successful write takes a reference for the MessageOut
// event the caller publishes after the lock is released (no event is
// published under a connection lock) and then releases: Disconnected
// comes after every MessageOut.
func (c *Conn) writeFrame(ctx context.Context, op ws.OpCode, p []byte, publish bool) error {
	sc, loop := ctx.(*serveCtx) // cheaper than comparing interfaces
	loop = loop && sc == c.lctx
	if !loop {
		if done := ctx.Done(); done != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			return c.writeFrameCtx(ctx, op, p, publish)
		}
		c.writers.Add(1)
	}
	return c.writeFrameLoop(op, p, publish, loop)
}

// writeFrameCtx is writeFrame for a ctx that can end: if it ends while the
// write waits on the socket, the connection is aborted, which releases the
// write.
func (c *Conn) writeFrameCtx(ctx context.Context, op ws.OpCode, p []byte, publish bool) error {
	const writing, written, abandoned = 0, 1, 2
	var state atomic.Int32
	stop := context.AfterFunc(ctx, func() {
		if c.stopping.Load() {
			// A close is under way: its timer bounds this write, and the
			// close frame waiting behind it should still go out. (A
			// handler's ctx, and any ctx derived from it, ends as the close
			// starts.)
			return
		}
		if state.CompareAndSwap(writing, abandoned) {
			_ = c.abort(fmt.Errorf("tether: write abandoned: %w", context.Cause(ctx)), true)
		}
	})
	defer stop()
	c.writers.Add(1)
	err := c.writeFrameLoop(op, p, publish, false)
	if !state.CompareAndSwap(writing, written) { // the ctx ended first: the connection is aborted
		if err == nil && publish {
			c.release() // the MessageOut this write counted will not be published
		}
		return fmt.Errorf("%w: write abandoned: %w", ErrClosed, ctx.Err())
	}
	return err
}

func (c *Conn) writeFrameLoop(op ws.OpCode, p []byte, publish, loop bool) error {
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
	held := (err == nil && publish) || broken
	if held && !c.hold() { // the connection finished meanwhile: no event
		held = false
	}
	c.unlockWriter()
	if broken {
		return c.brokenWrite(err, held)
	}
	if err == nil && publish && !held {
		return errNoEvent
	}
	return err
}

// errNoEvent tells writeData that the frame was written but the connection
// finished before its MessageOut could be counted: no event, no release.
var errNoEvent = errors.New("tether: written, no event")

// brokenWrite ends the connection after the socket refused a write. held:
// a reference was taken for its Error event, so that Disconnected waits for
// it.
func (c *Conn) brokenWrite(err error, held bool) error {
	if held {
		c.publishError(fmt.Errorf("tether: write failed: %w", err), true)
		c.release()
	}
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

// sendClose sends the close frame with code (0: an empty body) and reason,
// once, without waiting for the writer or the socket: if another write
// holds the writer, the frame is left for that writer, which sends it when
// it leaves (unlockWriter); if the writer is free, a goroutine takes it and
// sends the frame, since the write may wait on a peer that stopped reading
// (the close timer bounds that wait, and the caller must not share it).
func (c *Conn) sendClose(code ws.StatusCode, reason string) {
	c.mu.Lock()
	c.closeCode, c.closeReason = code, reason
	c.mu.Unlock()
	c.closePending.Store(true)
	if c.wmu.TryLock() {
		go c.unlockWriter() // a sync.Mutex may be unlocked by another goroutine
	}
}

// writeClose sends the close frame now, waiting for the writer if another
// write holds it: for the read loop's answer to the peer's close and its
// close after a protocol violation, which release the socket right after,
// and for a close before Serve. A writer stuck on the socket is released by
// the close timer, armed before.
func (c *Conn) writeClose(code ws.StatusCode, reason string) {
	c.wmu.Lock()
	_ = c.writeCloseLocked(code, reason)
	c.unlockWriter()
}

// unlockWriter releases the writer, sending a pending close frame first. A
// close frame handed over while the holder was leaving is caught by the
// check after the unlock.
func (c *Conn) unlockWriter() {
	for {
		if c.closePending.Load() {
			c.closePending.Store(false)
			c.mu.Lock()
			code, reason := c.closeCode, c.closeReason
			c.mu.Unlock()
			_ = c.writeCloseLocked(code, reason)
		}
		c.wmu.Unlock()
		if !c.closePending.Load() || !c.wmu.TryLock() {
			return
		}
	}
}

// writeCloseLocked sends a close frame, once. code 0 sends an empty body.
// It always flushes. wmu is held.
func (c *Conn) writeCloseLocked(code ws.StatusCode, reason string) error {
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
	c.unlockWriter()
	if err != nil {
		c.writeFailed(err)
	}
}
