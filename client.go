package tether

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/internal/goid"
	"github.com/tetherws/tether/retry"
)

// Errors of a Client.
var (
	// ErrBufferFull: a Send while reconnecting found the send buffer full
	// (see WithSendBuffer). The message was not accepted.
	ErrBufferFull = errors.New("tether: send buffer full")
	// ErrUnsent: the client ended with messages it had accepted but never
	// sent; Unsent returns them.
	ErrUnsent = errors.New("tether: messages accepted but never sent")
	// ErrClientClosed is the cause of a client ended by its own Close. It
	// matches core.ErrClosed too.
	ErrClientClosed error = clientClosed{}
)

type clientClosed struct{}

func (clientClosed) Error() string        { return "tether: client closed by Close" }
func (clientClosed) Is(target error) bool { return target == core.ErrClosed }

// Client is a WebSocket connection that survives reconnects: when its
// connection is lost for a reason the classifier deems retryable (see
// Retryable), it reconnects on the retry policy's schedule, runs the
// on-reconnect hook, then sends what was queued meanwhile, in order.
//
// # Concurrency
//
// Send, Write, Close, Done, Err, Conn and the other accessors may be called
// from any goroutine. Messages from one goroutine go out in the order it
// sent them, across reconnects. The handler (WithHandler) runs on the
// client's single reading goroutine, for every connection in turn.
//
// # What is accepted is not dropped silently
//
// Send returns nil when the message was written to the live connection's
// buffer, or queued while the client reconnects. Queued messages are sent
// after the next reconnect, or, if the client ends first (Close, give-up),
// returned by Unsent. As with any WebSocket, a message written just before
// a connection dies may be lost in the network with it; applications that
// need exactly-once delivery acknowledge messages themselves.
//
// One reconnect runs at a time: a connection has one end, however many
// causes race for it (a heartbeat timeout and a read error), and the next
// connection is dialed only after the previous one is fully closed, its
// timers stopped and its hook returned.
type Client struct {
	id          string
	url         string
	dialer      core.Dialer
	clock       clockwork.Clock
	loop        *retry.Loop // nil: never reconnect
	stableAfter time.Duration
	cs          clientSettings

	ctx    context.Context // ends when the client ends
	cancel context.CancelFunc
	done   chan struct{}
	dials  atomic.Uint64
	runID  atomic.Uint64  // goroutine id of the reading goroutine
	hookID atomic.Uint64  // goroutine id of the after-reconnect goroutine, while it runs
	hook   sync.WaitGroup // the after-reconnect goroutine of the current connection

	mu          sync.Mutex
	cur         *core.Conn // the current connection; nil while reconnecting
	live        *core.Conn // cur once its queue was flushed: Sends write to it directly
	queue       []core.Frame
	qbytes      int
	closed      bool // Close was called
	ended       bool
	err         error // why the client ended
	unsent      []core.Frame
	ready       *core.Conn // the last connection whose hook succeeded before it started closing: it worked
	dying       *core.Conn // the last connection that started closing
	hookConn    *core.Conn // the connection whose on-reconnect hook failed, with hookErr
	hookErr     error
	closeCode   ws.StatusCode
	closeReason string
}

var clientSeq atomic.Uint64

// Dial connects to rawURL (ws:// or wss://) and returns a Client that keeps
// the connection up, configured by opts: WithRetry, WithHeartbeat,
// WithHandler, WithMiddleware, WithClock, WithBus, WithHeader, ... ctx
// bounds the first connection only (and its retries, with
// WithRetryFirstDial); the client lives until Close or until it gives up.
//
// The first dial is not retried unless WithRetryFirstDial is given: a wrong
// URL or a refused credential fails here, at once.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", core.ErrInvalidConfig)
	}
	s, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	if _, err := core.ParseURL(rawURL); err != nil {
		return nil, err
	}
	cs := s.client
	c := &Client{
		id:    cs.id,
		url:   rawURL,
		clock: s.cfg.Clock,
		cs:    cs,
		done:  make(chan struct{}),
	}
	if c.id == "" {
		c.id = "k" + strconv.FormatUint(clientSeq.Add(1), 10)
	}
	c.dialer = core.Dialer{
		Config:           s.cfg,
		Protocols:        cs.protocols,
		TLSConfig:        cs.tls,
		NetDial:          cs.netDial,
		HandshakeTimeout: cs.handshakeTimeout,
	}
	if cs.policy != nil {
		c.loop = &retry.Loop{Policy: cs.policy, Clock: c.clock, Bus: s.cfg.Bus, ClientID: c.id, Retryable: cs.retryable}
		c.stableAfter = cs.policy.StableAfter()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	conn, err := c.dialOnce(ctx, 0)
	if err != nil {
		if !cs.retryFirst || c.loop == nil {
			c.cancel()
			return nil, err
		}
		_, err = c.loop.Run(ctx, err, c.clock.Now(), 1, func(ctx context.Context, a int) error {
			conn, err = c.dialOnce(ctx, a)
			return err
		})
		if err != nil {
			c.cancel()
			return nil, err
		}
	}
	c.mu.Lock()
	c.cur, c.live = conn, conn // nothing can be queued yet: Dial has not returned
	c.ready = conn
	c.mu.Unlock()
	c.watch(conn)
	go c.run(conn, 0) // the first connection is no reconnect, however many attempts it took: no hook, no Reconnected
	return c, nil
}

// dialOnce makes one dial. attempt is 0 for the first connection.
func (c *Client) dialOnce(ctx context.Context, attempt int) (*core.Conn, error) {
	h := c.cs.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if c.cs.beforeDial != nil {
		if err := c.cs.beforeDial(ctx, attempt, h); err != nil {
			return nil, fmt.Errorf("tether: before dial: %w", err)
		}
	}
	d := c.dialer
	d.Header = h
	d.Config.ID = c.id + "." + strconv.FormatUint(c.dials.Add(1), 10)
	return d.Dial(ctx, c.url)
}

// watch stops direct writes to conn as soon as it starts closing, so that
// Sends queue for the next connection instead of failing.
func (c *Client) watch(conn *core.Conn) {
	_ = conn.OnClose(func() {
		c.mu.Lock()
		if c.live == conn {
			c.live = nil
		}
		c.dying = conn
		c.mu.Unlock()
	})
}

// run is the client's goroutine: it serves each connection in turn and
// reconnects between them. attempt is the number of the attempt that made
// conn (0 for the first connection).
func (c *Client) run(conn *core.Conn, attempt int) {
	defer close(c.done)
	c.runID.Store(goid.Get())
	lostAt := time.Time{}
	for {
		connectedAt := c.clock.Now()
		if attempt > 0 {
			c.hook.Add(1)
			go c.afterReconnect(conn, attempt, lostAt)
		}
		cause := conn.Serve(c.ctx)
		c.hook.Wait()

		c.mu.Lock()
		c.cur, c.live = nil, nil
		closed := c.closed
		worked := c.ready == conn
		c.ready = nil
		if c.hookConn == conn {
			cause = c.hookErr // what the classifier and GaveUp see: the hook's own error
		}
		c.hookErr, c.hookConn = nil, nil
		c.mu.Unlock()
		if closed {
			c.end(ErrClientClosed)
			return
		}
		if c.loop == nil {
			c.end(cause)
			return
		}
		first := 1
		if !worked || (attempt > 0 && c.clock.Since(connectedAt) < c.stableAfter) {
			// The counter is not reset: that connection did not really work
			// (its hook failed, or it died before the queue was flushed, or
			// it did not stay up for StableAfter).
			first = attempt + 1
		}
		lostAt = c.clock.Now()
		var next *core.Conn
		n, err := c.loop.Run(c.ctx, cause, lostAt, first, func(ctx context.Context, a int) error {
			cc, err := c.dialOnce(ctx, a)
			next = cc
			return err
		})
		if err != nil {
			if c.isClosed() {
				err = ErrClientClosed
			}
			c.end(err)
			return
		}
		c.mu.Lock()
		if c.closed { // Close came while the winning dial completed
			code, reason := c.closeCode, c.closeReason
			c.mu.Unlock()
			_ = next.Close(code, reason)
			c.end(ErrClientClosed)
			return
		}
		c.cur = next
		c.mu.Unlock()
		c.watch(next)
		conn, attempt = next, n
	}
}

// afterReconnect runs on its own goroutine while conn serves: the
// on-reconnect hook, the Reconnected event, then the queued messages.
func (c *Client) afterReconnect(conn *core.Conn, attempt int, lostAt time.Time) {
	defer c.hook.Done()
	c.hookID.Store(goid.Get())
	defer c.hookID.Store(0)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	_ = conn.OnClose(cancel)
	if c.cs.onReconnect != nil {
		if err := c.cs.onReconnect(ctx, conn); err != nil {
			// The attempt failed after all: the counter goes on (ready is
			// not set), the classifier sees the hook's error, and the
			// server is told why.
			err = fmt.Errorf("tether: on-reconnect hook: %w", err)
			c.mu.Lock()
			c.hookErr, c.hookConn = err, conn
			c.mu.Unlock()
			core.Emit(conn, events.Error{ConnID: conn.ID(), Err: err, Fatal: true, At: c.clock.Now()})
			_ = conn.Close(ws.StatusInternalServerError, "reconnect hook failed")
			return
		}
	}
	c.mu.Lock()
	if c.dying == conn { // it died during the hook: it did not work
		c.mu.Unlock()
		return
	}
	c.ready = conn // it worked: the next outage starts counting again
	c.mu.Unlock()
	// Emit, not Publish: it comes before this connection's Disconnected, or
	// not at all if the connection already ended.
	core.Emit(conn, events.Reconnected{
		ClientID: c.id, ConnID: conn.ID(), Attempts: attempt, Downtime: c.clock.Since(lostAt), At: c.clock.Now(),
	})
	c.flush(conn)
}

// flush sends the queue on conn, oldest first, then lets Sends write to
// conn directly. Sends made meanwhile join the end of the queue. It stops,
// leaving the rest queued, if conn goes away.
func (c *Client) flush(conn *core.Conn) {
	for {
		c.mu.Lock()
		if c.cur != conn || c.ended || c.dying == conn {
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.live = conn
			c.mu.Unlock()
			return
		}
		// Taken out before the write, so that Queued never counts a message
		// the peer may already have; put back first in line if conn is
		// going away. Only this goroutine takes from the queue, and the
		// client ends only after it returned.
		f := c.queue[0]
		c.queue[0] = core.Frame{}
		c.queue = c.queue[1:]
		c.qbytes -= len(f.Payload)
		c.mu.Unlock()
		err := conn.Write(context.Background(), f.Op, f.Payload)
		if err == nil {
			continue
		}
		c.mu.Lock()
		if errors.Is(err, core.ErrClosed) {
			c.queue = append([]core.Frame{f}, c.queue...)
			c.qbytes += len(f.Payload)
			c.mu.Unlock()
			return
		}
		c.unsent = append(c.unsent, f) // an outbound middleware refused it: reported, not lost
		c.mu.Unlock()
	}
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// end records why the client ended; whatever is still queued becomes
// unsent.
func (c *Client) end(err error) {
	c.mu.Lock()
	c.ended = true
	c.err = err
	c.unsent = append(c.unsent, c.queue...)
	c.queue, c.qbytes = nil, 0
	c.mu.Unlock()
	c.cancel()
}

// Send sends one message, op ws.OpText or ws.OpBinary, on the current
// connection, through its outbound middlewares; see core.Conn.Write. While
// the client reconnects (or flushes what was queued meanwhile), the message
// is copied into the send buffer and sent after the next reconnect, in
// order. A full buffer returns an error matching ErrBufferFull; an ended
// client, one matching core.ErrClosed (and retry.ErrGaveUp if it gave up).
// ctx bounds the write; it is checked before a message is queued.
func (c *Client) Send(ctx context.Context, op ws.OpCode, p []byte) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", core.ErrInvalidConfig)
	}
	if op != ws.OpText && op != ws.OpBinary {
		return fmt.Errorf("%w: opcode %d", core.ErrBadOpcode, op)
	}
	c.mu.Lock()
	for conn := c.live; conn != nil && !c.closed && !c.ended; conn = c.live {
		c.mu.Unlock()
		err := conn.Write(ctx, op, p)
		if err == nil || !errors.Is(err, core.ErrClosed) {
			return err
		}
		// The connection is going away: the message goes to the next live
		// one if there already is one, else waits in the queue for it.
		c.mu.Lock()
		if c.live == conn {
			c.live = nil
		}
	}
	defer c.mu.Unlock()
	if c.closed || c.ended {
		return c.endedErr()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(c.queue) >= c.cs.maxQueue || c.qbytes+len(p) > c.cs.maxQueueBytes {
		return fmt.Errorf("%w: %d messages, %d bytes queued (limits %d, %d)", ErrBufferFull, len(c.queue), c.qbytes, c.cs.maxQueue, c.cs.maxQueueBytes)
	}
	c.queue = append(c.queue, core.Frame{Op: op, Payload: bytes.Clone(p)})
	c.qbytes += len(p)
	return nil
}

// endedErr is what Send returns once the client ended or is closing. c.mu
// is held.
func (c *Client) endedErr() error {
	if c.err == nil || c.err == ErrClientClosed {
		return ErrClientClosed
	}
	return fmt.Errorf("%w: %w", core.ErrClosed, c.err)
}

// SendText sends s as one text message; see Send.
func (c *Client) SendText(ctx context.Context, s string) error {
	return c.Send(ctx, ws.OpText, []byte(s))
}

// Write is Send, under core.Conn's name, so that code written against
// either works with both.
func (c *Client) Write(ctx context.Context, op ws.OpCode, p []byte) error { return c.Send(ctx, op, p) }

// WriteText is SendText, under core.Conn's name.
func (c *Client) WriteText(ctx context.Context, s string) error { return c.SendText(ctx, s) }

// Close closes the client for good: it stops any reconnect, closes the
// current connection with code and reason (waiting for the peer's answer,
// bounded by the close timeout) and waits until the client's goroutines
// have returned. It never triggers a reconnect. Messages still queued are
// not sent: Close then returns an error matching ErrUnsent, and Unsent
// returns them. A second Close returns an error matching core.ErrClosed.
//
// Called from the handler or the on-reconnect hook, Close does not wait for
// the client's goroutines (they are waiting for the caller). It must not be
// called from a connection's OnClose hook, which may not block: react to a
// connection's end from an event subscriber instead.
func (c *Client) Close(code ws.StatusCode, reason string) error {
	if err := core.CheckClose(code, reason); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed || c.ended {
		closed, n := c.closed, len(c.unsent)
		c.closed = true // a later Close says so
		c.mu.Unlock()
		if closed {
			return fmt.Errorf("%w: already closed", core.ErrClosed)
		}
		<-c.done
		err := fmt.Errorf("%w: the client had ended: %w", core.ErrClosed, c.Err())
		if n > 0 {
			err = errors.Join(err, fmt.Errorf("%w: %d message(s); see Unsent", ErrUnsent, n))
		}
		return err
	}
	c.closed = true
	c.closeCode, c.closeReason = code, reason
	conn := c.cur
	c.live = nil
	c.mu.Unlock()
	var err error
	if conn != nil {
		err = conn.Close(code, reason)
		if errors.Is(err, core.ErrClosed) { // it was closing already: lost, about to reconnect
			err = nil
		}
	}
	c.cancel()
	if id := goid.Get(); id == c.runID.Load() || id == c.hookID.Load() {
		return err
	}
	<-c.done
	c.mu.Lock()
	n := len(c.unsent)
	c.mu.Unlock()
	if n > 0 {
		err = errors.Join(err, fmt.Errorf("%w: %d message(s); see Unsent", ErrUnsent, n))
	}
	return err
}

// Done returns a channel closed when the client has ended: closed by Close,
// or given up reconnecting.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client runs, then why it ended: ErrClientClosed
// after Close; a *retry.GaveUpError (errors.Is retry.ErrGaveUp) when it
// gave up, wrapping the last connection's or attempt's error; or, with
// reconnecting turned off (WithRetry(nil)), the cause of the connection's
// end, a *core.CloseError.
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Unsent returns copies of the messages the client accepted but never
// sent: those still queued when it ended, and those an outbound middleware
// refused when they were flushed after a reconnect.
func (c *Client) Unsent() []core.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]core.Frame, len(c.unsent))
	for i, f := range c.unsent {
		out[i] = core.Frame{Op: f.Op, Payload: bytes.Clone(f.Payload)}
	}
	return out
}

// Queued returns how many messages wait in the send buffer.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// ID returns the client's id, as used in its events.
func (c *Client) ID() string { return c.id }

// Conn returns the current connection, or nil while the client reconnects
// or after it ended. Writing to it directly bypasses the send buffer.
func (c *Client) Conn() *core.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// RTT returns the heartbeat's latest round-trip time on the current
// connection, and false without a heartbeat, a connection or an answer yet.
func (c *Client) RTT() (time.Duration, bool) {
	return heartbeat.RTT(c.Conn())
}
