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
	"unicode/utf8"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
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
	// matches ErrClosed too.
	ErrClientClosed error = clientClosed{}
)

type clientClosed struct{}

func (clientClosed) Error() string        { return "tether: client closed by Close" }
func (clientClosed) Is(target error) bool { return target == core.ErrClosed }

// ClientState names what a Client is doing. The states and the moves
// between them are drawn in docs/architecture.md.
type ClientState int32

const (
	// Connecting: a dial is under way (the first connection, or a
	// reconnect attempt). Sends are queued.
	Connecting ClientState = iota
	// Flushing: a new connection is up; the on-reconnect hook runs, then
	// what was queued is sent, in order. Sends are queued behind it.
	Flushing
	// Live: the connection is up and the queue empty: Sends write to the
	// connection.
	Live
	// BackingOff: the connection was lost, or is closing; the client waits
	// for its end, then the reconnect plugin's delay on its clock. Sends are
	// queued.
	BackingOff
	// Closing: Close was called; the current connection, if any, is
	// closing. Sends fail.
	Closing
	// Closed: the client has ended (Close, a give-up, or without
	// reconnects the end of its connection). Done is closed.
	Closed
)

var stateNames = [...]string{"connecting", "flushing", "live", "backing off", "closing", "closed"}

// String returns the state's name, such as "live".
func (s ClientState) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "ClientState(" + strconv.Itoa(int(s)) + ")"
	}
	return stateNames[s]
}

// Client is a WebSocket connection that survives reconnects: when its
// connection is lost, its reconnect plugin (retry.Reconnect unless
// WithReconnector says otherwise) decides whether and when to dial again;
// after a reconnect the client runs the on-reconnect hook, then sends what
// was queued meanwhile, in order.
//
// One supervisor goroutine drives the client through its states
// (ClientState); every other call talks to it. The supervisor dials, waits
// on the clock, runs the hook and flushes the queue; each connection's read
// loop runs on a goroutine of its own, where the handler runs.
//
// # Concurrency
//
// Every method may be called from any goroutine. Messages from one
// goroutine go out in the order it sent them, across reconnects. Close
// starts closing and returns; Done and Err tell when and why the client
// ended. Three methods may wait, each bounded by its ctx: Send (on a
// socket the peer does not drain), Shutdown and Reconnect (for the
// client's end, or a new connection). Shutdown and Reconnect must not be
// called from a handler or the on-reconnect hook, which they would wait
// for.
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
// connection is dialed only after the previous one has fully ended, its
// timers stopped and its hook returned.
type Client struct {
	id     string
	url    string
	dialer core.Dialer
	clock  clockwork.Clock
	sched  core.Schedule // nil: never reconnect
	ds     *dialSettings

	ctx       context.Context // ends when the client is closing or has ended: dials, waits and hooks stop
	cancel    context.CancelFunc
	done      chan struct{}
	wake      chan struct{} // Close or Reconnect asked the supervisor something
	dials     uint64        // dials so far; the supervisor's
	attaching *core.Handle  // the handle of the connection being dialed; the supervisor's

	mu           sync.Mutex
	state        ClientState
	conn         *core.Conn // the current connection (Flushing, Live), until it has ended
	live         *core.Conn // conn while Live and not closing: Sends write to it
	dying        *core.Conn // the last connection that started closing
	queue        []core.Frame
	qbytes       int
	closeReq     bool // Close was called
	closeCode    StatusCode
	closeReason  string
	reconnectReq bool          // Reconnect was called; the supervisor has not acted on it yet
	gen          uint64        // connections that became Live so far
	changed      chan struct{} // closed and replaced when gen changes and when the client ends
	err          error         // why the client ended
	unsent       []core.Frame
}

var clientSeq atomic.Uint64

// Dial connects to rawURL (ws:// or wss://) and returns a Client that keeps
// the connection up, configured by opts: the options of either side
// (WithHandler, WithHeartbeat, WithClock, WithBus, WithMiddleware, ...) and
// the client's own (WithRetry, WithSendBuffer, WithHeader,
// WithOnReconnect, ...). The heartbeat is on by default (a ping every 30 s;
// no answer in 10 s: the connection is dead and the client reconnects), as
// is reconnecting (1, 2, 4, 8, 16 s, then give up).
//
// ctx bounds the first connection only (and its retries, with
// WithRetryFirstDial); the client lives until Close or until it gives up.
// The first dial is not retried unless WithRetryFirstDial is given: a
// wrong URL or a refused credential fails here, at once, with the dial's
// error.
func Dial(ctx context.Context, rawURL string, opts ...DialOption) (*Client, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", core.ErrInvalidConfig)
	}
	ds, cfg, err := newDialSettings(opts)
	if err != nil {
		return nil, err
	}
	if _, err := core.ParseURL(rawURL); err != nil {
		return nil, err
	}
	c := &Client{
		id:      ds.id,
		url:     rawURL,
		clock:   cfg.Clock,
		ds:      ds,
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
	if c.id == "" {
		c.id = "k" + strconv.FormatUint(clientSeq.Add(1), 10)
	}
	if ds.reconnector != nil {
		if c.sched, err = ds.reconnector.Start(core.ClientInfo{ID: c.id, Clock: cfg.Clock, Bus: cfg.Bus}); err != nil {
			return nil, err
		}
		if c.sched == nil {
			return nil, fmt.Errorf("%w: %T.Start returned no Schedule", core.ErrInvalidConfig, ds.reconnector)
		}
	}
	// The client's own plugin comes first on every connection: it learns
	// the connection's handle, and takes it out of service for Sends the
	// moment it starts closing.
	cfg.Plugins = append([]core.Plugin{core.PluginFunc(c.attach)}, cfg.Plugins...)
	c.dialer = core.Dialer{
		Config:           cfg,
		Header:           ds.header,
		Protocols:        ds.protocols,
		TLSConfig:        ds.tls,
		NetDial:          ds.netDial,
		HandshakeTimeout: ds.handshakeTimeout,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	first := make(chan error)
	go c.run(ctx, first)
	if err := <-first; err != nil {
		<-c.done
		return nil, err
	}
	return c, nil
}

// dialOnce makes one dial with ctx. attempt is 0 for the first connection.
// Only the supervisor calls it.
func (c *Client) dialOnce(ctx context.Context, attempt int) (*core.Conn, *core.Handle, error) {
	d := &c.dialer
	if c.ds.beforeDial != nil {
		h := c.ds.header.Clone()
		if h == nil {
			h = http.Header{}
		}
		if err := c.ds.beforeDial(ctx, attempt, h); err != nil {
			return nil, nil, fmt.Errorf("tether: before dial: %w", err)
		}
		d.Header = h
	}
	c.dials++
	var b [64]byte
	d.Config.ID = string(strconv.AppendUint(append(append(b[:0], c.id...), '.'), c.dials, 10))
	c.attaching = nil
	conn, err := d.Dial(ctx, c.url)
	if err != nil {
		return nil, nil, err
	}
	return conn, c.attaching, nil
}

// attach is the client's own plugin, attached first to every connection it
// dials, while the supervisor dials it.
func (c *Client) attach(h *core.Handle) error {
	c.attaching = h
	conn := h.Conn()
	return h.OnClose(func() { c.connClosing(conn) })
}

// connClosing takes conn out of service for Sends the moment it starts
// closing, so that they queue for the next connection instead of failing.
func (c *Client) connClosing(conn *core.Conn) {
	c.mu.Lock()
	if c.live == conn {
		c.live = nil
	}
	if c.conn == conn {
		c.conn = nil // Conn reports no connection, and Close has none left to close
		if c.state == Live || c.state == Flushing {
			c.state = BackingOff
		}
	}
	c.dying = conn
	c.mu.Unlock()
}

func (c *Client) setState(s ClientState) {
	c.mu.Lock()
	if c.state != Closing && c.state != Closed {
		c.state = s
	}
	c.mu.Unlock()
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run is the supervisor. first receives the outcome of the first
// connection: nil once it is live, or the error the client ended with.
func (c *Client) run(dialCtx context.Context, first chan<- error) {
	defer close(c.done)
	// Until the first connection is open, Dial's ctx bounds the dials and
	// the waits too (unless it can never end).
	ctx := c.ctx
	stop := func() {}
	if dialCtx.Done() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(dialCtx)
		stopJoin := context.AfterFunc(c.ctx, cancel)
		stop = func() { stopJoin(); cancel() }
	}
	inFirst := true
	leaveFirst := func(err error) {
		if inFirst {
			inFirst = false
			stop()
			ctx = c.ctx
			first <- err
		}
	}
	end := func(err error) {
		c.end(err)
		leaveFirst(err)
	}

	firstDial := true  // the very first dial is attempt 0 and no plugin's
	var cause error    // why the last connection or attempt ended
	dialNow := true    // skip the reconnect plugin: the first dial, or a forced reconnect
	reconnect := false // a connection has been live before: the next one runs the hook
	for {
		if !dialNow {
			// The connection or the attempt was lost: ask the plugin.
			if c.isClosing() {
				end(ErrClientClosed)
				return
			}
			d, err := c.sched.Lost(cause)
			if err != nil {
				end(err)
				return
			}
			c.setState(BackingOff)
			switch c.wait(ctx, d) {
			case waitClosed:
				end(c.closedErr(ctx))
				return
			case waitForced:
				c.sched.Forced()
			}
		}
		dialNow = false

		// Connecting.
		c.setState(Connecting)
		attempt := 0
		switch {
		case firstDial:
		case c.sched != nil:
			attempt = c.sched.Dialing()
		default: // a forced reconnect without a reconnect plugin: one attempt
			attempt = 1
		}
		firstDial = false
		conn, h, err := c.dialOnce(ctx, attempt)
		if err != nil {
			if c.isClosing() {
				end(ErrClientClosed)
				return
			}
			if ctx.Err() != nil { // Dial's ctx ended: the dial's error says how
				end(err)
				return
			}
			if c.sched == nil || (inFirst && !c.ds.retryFirst) {
				end(err)
				return
			}
			cause = err
			continue
		}
		c.mu.Lock()
		if c.closeReq { // Close came while the dial completed
			code, reason := c.closeCode, c.closeReason
			c.mu.Unlock()
			_ = conn.Close(code, reason) // not serving: releases the socket
			end(ErrClientClosed)
			return
		}
		c.conn = conn
		c.reconnectReq = false // a new connection answers any reconnect asked for so far
		c.state = Flushing
		c.mu.Unlock()
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = conn.Serve(context.Background())
			<-conn.Done() // if something else served it (ErrAlreadyServing), its end all the same
		}()

		// Flushing: the hook (after a reconnect), then the queue.
		cause = nil
		if reconnect && c.ds.onReconnect != nil {
			cause = c.runHook(conn, h)
		}
		if cause == nil {
			if c.sched != nil {
				c.sched.Opened(h)
			}
			reconnect = true
			c.flush(conn)
			c.goLive(conn)
			leaveFirst(nil)
		}

		// Live (or a connection already on its way out): wait for its end.
		<-served
		if cause == nil || cause == errConnGone {
			cause = conn.Err()
		}
		c.mu.Lock()
		c.conn, c.live = nil, nil
		closing, forced := c.closeReq, c.reconnectReq
		c.reconnectReq = false
		c.mu.Unlock()
		switch {
		case closing:
			end(ErrClientClosed)
			return
		case forced: // asked for, with or without a reconnect plugin
			if c.sched != nil {
				c.sched.Forced()
			}
			dialNow = true
		case c.sched == nil:
			end(cause)
			return
		}
	}
}

type waitResult int

const (
	waitDone waitResult = iota
	waitClosed
	waitForced
)

// wait waits d on the clock, unless Close or Reconnect cut it short or ctx
// ends.
func (c *Client) wait(ctx context.Context, d time.Duration) waitResult {
	var fired <-chan time.Time
	if d > 0 {
		t := c.clock.NewTimer(d)
		defer t.Stop()
		fired = t.Chan()
	} else {
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		fired = ch
	}
	for {
		select {
		case <-fired:
			return waitDone
		case <-ctx.Done():
			return waitClosed
		case <-c.wake:
			c.mu.Lock()
			closing, forced := c.closeReq, c.reconnectReq
			c.reconnectReq = false
			c.mu.Unlock()
			switch {
			case closing:
				return waitClosed
			case forced:
				return waitForced
			}
		}
	}
}

// closedErr is what the client ends with when ctx stopped a dial or a
// wait: its Close, or the end of Dial's ctx.
func (c *Client) closedErr(ctx context.Context) error {
	if c.isClosing() || c.ctx.Err() != nil {
		return ErrClientClosed
	}
	return ctx.Err()
}

func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeReq
}

// runHook runs the on-reconnect hook on conn, with a ctx that ends when
// conn starts closing or the client is closed. It returns nil when the
// hook succeeded; otherwise why the attempt failed: the hook's error if
// conn is still up (conn is then closed with 1011), or, if conn went away
// during the hook, conn's own cause (which the caller reads once it ended).
func (c *Client) runHook(conn *core.Conn, h *core.Handle) error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	_ = h.OnClose(cancel)
	err := c.ds.onReconnect(ctx, conn)
	c.mu.Lock()
	gone := c.dying == conn || c.closeReq
	c.mu.Unlock()
	if gone {
		return errConnGone // the connection's end says why, not the hook's ctx
	}
	if err == nil {
		return nil
	}
	err = fmt.Errorf("tether: on-reconnect hook: %w", err)
	core.Emit(h, events.Error{ConnID: conn.ID(), Err: err, Fatal: true, At: c.clock.Now()})
	_ = conn.Close(StatusInternalError, "reconnect hook failed")
	return err
}

// errConnGone: the hook's connection ended during the hook; the cause is
// the connection's.
var errConnGone = errors.New("tether: connection gone during the on-reconnect hook")

// flush sends the queue on conn, oldest first. Sends made meanwhile join
// the end of the queue. It stops, leaving the rest queued, if conn goes
// away.
func (c *Client) flush(conn *core.Conn) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.dying == conn || c.closeReq {
			c.mu.Unlock()
			return
		}
		// Taken out before the write, so that Queued never counts a message
		// the peer may already have; put back first in line if conn is
		// going away. Only the supervisor takes from the queue.
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

// goLive makes conn the connection Sends write to, if the queue is empty
// and conn is still wanted. It reports whether it did.
func (c *Client) goLive(conn *core.Conn) bool {
	for {
		c.mu.Lock()
		if c.dying == conn || c.closeReq || c.reconnectReq || c.conn != conn {
			c.mu.Unlock()
			return false
		}
		if len(c.queue) > 0 { // Sends came during the last flush
			c.mu.Unlock()
			c.flush(conn)
			continue
		}
		c.live = conn
		c.state = Live
		c.gen++
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		return true
	}
}

// end records why the client ended; whatever is still queued becomes
// unsent.
func (c *Client) end(err error) {
	c.mu.Lock()
	c.state = Closed
	c.err = err
	c.unsent = append(c.unsent, c.queue...)
	c.queue, c.qbytes = nil, 0
	c.conn, c.live = nil, nil
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.cancel()
}

// Send sends one message, op OpText or OpBinary, on the live connection,
// through its outbound middlewares; see core.Conn.Write. A text message
// that is not valid UTF-8 is refused with an error matching
// core.ErrInvalidUTF8 (the peer would close the connection with 1007, for
// good). While the client
// is not live (it reconnects, or flushes what was queued meanwhile), the
// message is copied into the send buffer and sent after the next
// reconnect, in order. A full buffer returns an error matching
// ErrBufferFull at once; a closing or ended client, one matching ErrClosed
// (and retry.ErrGaveUp if it gave up).
//
// ctx bounds the write: if it ends while the write waits on a peer that
// stopped reading, the connection is aborted (the client reconnects) and
// Send returns an error matching ctx's error; that message was not
// accepted. A done ctx is refused before the message is queued.
func (c *Client) Send(ctx context.Context, op OpCode, p []byte) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", core.ErrInvalidConfig)
	}
	if op != OpText && op != OpBinary {
		return fmt.Errorf("%w: opcode %d", core.ErrBadOpcode, op)
	}
	if op == OpText && !utf8.Valid(p) {
		// The peer would close with 1007, which is not worth a reconnect:
		// one bad message would end the client.
		return fmt.Errorf("%w: a text message must be valid UTF-8; send it as binary", core.ErrInvalidUTF8)
	}
	for {
		c.mu.Lock()
		if c.closeReq || c.state == Closed {
			defer c.mu.Unlock()
			return c.endedErr()
		}
		conn := c.live
		if conn == nil {
			defer c.mu.Unlock()
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(c.queue) >= c.ds.maxQueue || c.qbytes+len(p) > c.ds.maxQueueBytes {
				return fmt.Errorf("%w: %d messages, %d bytes queued (limits %d, %d)", ErrBufferFull, len(c.queue), c.qbytes, c.ds.maxQueue, c.ds.maxQueueBytes)
			}
			c.queue = append(c.queue, core.Frame{Op: op, Payload: bytes.Clone(p)})
			c.qbytes += len(p)
			return nil
		}
		c.mu.Unlock()
		err := conn.Write(ctx, op, p)
		if err == nil || !errors.Is(err, core.ErrClosed) || ctx.Err() != nil {
			return err
		}
		// The connection is going away and refused the message: it goes to
		// the queue, for the next connection.
		c.mu.Lock()
		if c.live == conn {
			c.live = nil
		}
		c.mu.Unlock()
	}
}

// endedErr is what Send returns once the client is closing or has ended.
// c.mu is held.
func (c *Client) endedErr() error {
	if c.err == nil || c.err == ErrClientClosed {
		return ErrClientClosed
	}
	return clientEnded{c.err}
}

// clientEnded is the error of a call on a client that ended on its own: it
// matches ErrClosed and wraps why the client ended.
type clientEnded struct{ err error }

func (e clientEnded) Error() string        { return "tether: client ended: " + e.err.Error() }
func (e clientEnded) Unwrap() error        { return e.err }
func (e clientEnded) Is(target error) bool { return target == core.ErrClosed }

// SendText sends s as one text message; see Send.
func (c *Client) SendText(ctx context.Context, s string) error {
	return c.Send(ctx, OpText, []byte(s))
}

// Close starts closing the client for good and returns: it stops any
// reconnect, and starts the close handshake of the current connection with
// code and reason (bounded by the close timeout on the clock). It never
// triggers a reconnect. Done is closed once the client has ended; messages
// still queued then are not sent: Unsent returns them. Shutdown closes and
// waits.
//
// Close returns nil when it started the close, and an error matching
// ErrClosed when the client was already closing or had ended. A bad code
// or reason is an error and changes nothing (see core.CheckClose).
func (c *Client) Close(code StatusCode, reason string) error {
	if err := core.CheckClose(code, reason); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closeReq || c.state == Closed {
		c.mu.Unlock()
		return fmt.Errorf("%w: the client is already closing or has ended", core.ErrClosed)
	}
	c.closeReq = true
	c.closeCode, c.closeReason = code, reason
	c.state = Closing
	conn := c.conn
	c.live = nil
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Close(code, reason) // starts the handshake; the supervisor waits for its end
	}
	c.cancel()
	c.signal()
	return nil
}

// Shutdown closes the client like Close (if it is not closing already) and
// waits until it has ended or ctx is done. It returns nil when the client
// ended by Close with nothing left unsent; otherwise an error that matches
// ErrUnsent when messages were left unsent (Unsent returns them), and the
// client's own error (Err) when it had ended another way, by giving up say;
// or, when ctx ended first, ctx's error (the close goes on). Called from a
// handler or the on-reconnect hook, it would wait for its own return until
// ctx ends: call Close there.
func (c *Client) Shutdown(ctx context.Context, code StatusCode, reason string) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", core.ErrInvalidConfig)
	}
	if err := c.Close(code, reason); err != nil && !errors.Is(err, core.ErrClosed) {
		return err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("tether: client still closing: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.err != ErrClientClosed {
		errs = append(errs, c.err)
	}
	if n := len(c.unsent); n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d message(s); see Unsent", ErrUnsent, n))
	}
	return errors.Join(errs...)
}

// Reconnect replaces the current connection now: it closes it with 1000
// ("reconnecting") and, once that close handshake is over (bounded by the
// close timeout), dials again without the reconnect plugin's delay; while
// the client backs off, it cuts the wait short. If the forced dial fails,
// the reconnect plugin's schedule takes over from there; without a
// reconnect plugin (WithoutRetry) the client ends.
//
// Reconnect then waits until a new connection is live (nil), the client
// ends (an error matching ErrClosed), or ctx is done (ctx's error; the
// reconnect goes on). Called from a handler or the on-reconnect hook, it
// would wait for its own return until ctx ends.
func (c *Client) Reconnect(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", core.ErrInvalidConfig)
	}
	c.mu.Lock()
	if c.closeReq || c.state == Closed {
		defer c.mu.Unlock()
		return c.endedErr()
	}
	gen, changed := c.gen, c.changed
	c.reconnectReq = true
	conn := c.conn
	if conn != nil {
		c.live = nil // Sends queue for the next connection
	}
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Close(StatusNormalClosure, "reconnecting")
	}
	c.signal()
	for {
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		switch {
		case c.gen > gen:
			c.mu.Unlock()
			return nil
		case c.state == Closed:
			defer c.mu.Unlock()
			return c.endedErr()
		}
		changed = c.changed
		c.mu.Unlock()
	}
}

// Done returns a channel closed when the client has ended: closed by
// Close, or given up reconnecting (or, without reconnects, when its
// connection ended).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client runs, then why it ended: ErrClientClosed
// after Close; a *retry.GaveUpError (errors.Is retry.ErrGaveUp) when it
// gave up, wrapping the last connection's or attempt's error; or, with
// WithoutRetry, the cause of the connection's end, a *CloseError.
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
// refused when they were flushed after a reconnect. Read it after Done.
func (c *Client) Unsent() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Frame, len(c.unsent))
	for i, f := range c.unsent {
		out[i] = Frame{Op: f.Op, Payload: bytes.Clone(f.Payload)}
	}
	return out
}

// Queued returns how many messages wait in the send buffer.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// State returns what the client is doing now.
func (c *Client) State() ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// ID returns the client's id, as used in its events.
func (c *Client) ID() string { return c.id }

// Conn returns the current connection, or nil while the client reconnects
// or after it ended. Writing to it directly bypasses the send buffer.
func (c *Client) Conn() *Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}
