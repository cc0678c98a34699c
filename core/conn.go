package core

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/internal/goid"
)

// Conn is one WebSocket connection, client or server side: a single reader
// that runs every inbound message through the inbound middleware chain, and
// a single serialized writer behind the outbound chain.
//
// # Concurrency
//
// Write, Ping, Close, Done, Err and the accessors may be called from any
// goroutine, concurrently. Frames from concurrent writers never interleave:
// data, ping, pong and close frames all go through one locked writer. Serve
// must be called exactly once; it runs the read loop on the calling
// goroutine. Handlers, middlewares and control handlers run on that
// goroutine, one frame at a time.
//
// # Errors
//
// Any error that ends the connection (a protocol violation, a middleware
// error on the inbound path, a failed write, a lost socket) is final: the
// connection sends the close frame the error calls for when it can, closes
// the socket, and from then on Write returns an error matching ErrClosed.
// The cause is a *CloseError, returned by Serve and Err and published on
// the Disconnected event. An error returned by an outbound middleware is
// returned to the writer and leaves the connection open, unless it is a
// *CloseError.
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	client bool
	id     string
	proto  string

	clock        clockwork.Clock
	bus          *events.Bus
	maxMsg       int64
	closeTimeout time.Duration
	plugins      []Plugin
	in, out      Handler

	// Writer state, guarded by wmu.
	wmu           sync.Mutex
	writers       atomic.Int32 // writers waiting for or holding wmu (not the read loop)
	readMore      bool         // the read loop has more buffered input: defer its replies' flush
	dirty         bool         // bytes in bw not yet flushed
	closeSent     bool         // a close frame went out: no more frames may follow
	werr          error        // sticky write error
	outEvents     int          // MessageOut events counted but not yet published
	outEventsDone sync.Cond    // signalled when outEvents drops to 0; L is &wmu

	// Read state, owned by the read loop.
	msg             []byte      // reassembly buffer for fragmented or large messages
	lctx            *serveCtx   // the handlers' ctx; its identity marks the read loop's writes
	stopping        atomic.Bool // mirrors closing, for the read loop's per-frame check
	controlHandlers []ControlHandler
	reading         atomic.Bool
	readerID        atomic.Uint64 // goroutine id of the read loop, while it runs
	activity        atomic.Uint64 // inbound frames so far, if countFrames; see Activity
	countFrames     bool          // TrackActivity was called; set before the read loop starts
	hooksGID        atomic.Uint64 // goroutine id running the OnClose hooks in beginClose, while it does

	// Lifecycle, guarded by mu.
	mu          sync.Mutex
	serving     bool
	closing     bool  // a close started (by us, the peer or an error)
	cause       error // why the connection ends; set once
	handshake   bool  // we sent a close frame and the peer answered it
	timedOut    bool
	closeTimer  clockwork.Timer
	finishOnce  sync.Once
	finished    bool
	done        chan struct{}
	cancelServe context.CancelFunc // ends the handlers' and plugins' ctx; called once a close starts
	emitting    int                // plugin events being published (Emit); Disconnected waits for them
	emitDone    sync.Cond          // signalled when emitting drops to 0; L is &mu
	values      []keyValue         // plugin state (SetValue)
	closeHooks  []func()           // OnClose; run once when the close starts
}

var connSeq atomic.Uint64

// newConn wraps an upgraded socket. It publishes Connected: the handshake
// is done. It fails only when a middleware returns a nil Handler.
func newConn(nc net.Conn, br *bufio.Reader, bw *bufio.Writer, client bool, proto string, cfg Config) (*Conn, error) {
	if br == nil {
		br = bufio.NewReaderSize(nc, cfg.ReadBufferSize)
	}
	if bw == nil {
		bw = bufio.NewWriterSize(nc, cfg.WriteBufferSize)
	}
	id := cfg.ID
	if id == "" {
		id = "c" + strconv.FormatUint(connSeq.Add(1), 10)
	}
	c := &Conn{
		nc:           nc,
		br:           br,
		bw:           bw,
		client:       client,
		id:           id,
		proto:        proto,
		clock:        cfg.Clock,
		bus:          cfg.Bus,
		maxMsg:       cfg.MaxMessageSize,
		closeTimeout: cfg.CloseTimeout,
		plugins:      cfg.Plugins,
		done:         make(chan struct{}),
	}
	c.outEventsDone.L = &c.wmu
	c.emitDone.L = &c.mu
	c.lctx = &serveCtx{conn: c}
	var err error
	if c.in, err = cfg.Inbound.compose(c.publishIn(cfg.Handler)); err != nil {
		return nil, err
	}
	if c.out, err = cfg.Outbound.compose(c.writeData); err != nil {
		return nil, err
	}
	if events.Enabled[events.Connected](c.bus) {
		events.Publish(c.bus, events.Connected{
			ConnID: c.id, Client: c.client, Subprotocol: c.proto,
			LocalAddr: addrString(nc.LocalAddr()), RemoteAddr: addrString(nc.RemoteAddr()),
			At: c.clock.Now(),
		})
	}
	return c, nil
}

// adopt is newConn for a socket that must be closed if it fails.
func adopt(nc net.Conn, br *bufio.Reader, bw *bufio.Writer, client bool, proto string, cfg Config) (*Conn, error) {
	c, err := newConn(nc, br, bw, client, proto, cfg)
	if err != nil {
		_ = nc.Close()
	}
	return c, err
}

// ID returns the connection's id, as used in events.
func (c *Conn) ID() string { return c.id }

// Client reports whether this is the dialing side.
func (c *Conn) Client() bool { return c.client }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.proto }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Clock returns the clock that drives the connection's timings; plugins arm
// their timers on it.
func (c *Conn) Clock() clockwork.Clock { return c.clock }

// Bus returns the bus the connection publishes on, or nil.
func (c *Conn) Bus() *events.Bus { return c.bus }

// Done returns a channel that is closed once the connection is fully
// closed: socket released, read loop ended, plugins stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns the cause of the connection's end, a *CloseError, or nil
// while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Serve runs the connection: it runs the plugins, then reads frames until
// the connection closes, and returns the cause, a
// *CloseError (errors.As). When ctx is done the connection is closed with
// 1001 (going away). Serve must be called once; a second call returns
// ErrAlreadyServing. Called after the connection was closed, it returns the
// cause at once.
func (c *Conn) Serve(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	c.mu.Lock()
	if c.serving {
		c.mu.Unlock()
		return ErrAlreadyServing
	}
	c.serving = true
	if c.closing {
		c.mu.Unlock()
		<-c.done
		return c.Err()
	}
	loopCtx, cancel := context.WithCancel(ctx)
	c.lctx.Context = loopCtx
	c.cancelServe = cancel
	c.mu.Unlock()
	c.readerID.Store(goid.Get())

	// Close with 1001 when the caller's ctx ends. The goroutine runs only
	// then; Serve waits for it before returning.
	closerDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closerDone)
		_ = c.closeWith(ws.StatusGoingAway, "going away", nil, false)
	})

	for _, p := range c.plugins {
		if loopCtx.Err() != nil { // a close already started
			break
		}
		if err := p.Run(loopCtx, c); err != nil {
			c.fail(fmt.Errorf("tether: plugin: %w", err))
			break
		}
	}

	c.reading.Store(true)
	err := c.readLoop()
	c.finish(err)

	if !stop() {
		<-closerDone
	}
	return c.Err()
}

// serveCtx is the context handed to inbound handlers. It is allocated with
// the connection, so that writers can recognise the read loop's own replies
// by comparing a pointer, and filled in once by Serve before the read loop
// starts.
type serveCtx struct {
	context.Context
	conn *Conn
}

type connKey struct{}

// Value returns the connection for FromContext, and defers anything else to
// the context given to Serve.
func (s *serveCtx) Value(key any) any {
	if key == (connKey{}) {
		return s.conn
	}
	return s.Context.Value(key)
}

// FromContext returns the connection whose handler was given ctx (or a
// context derived from it), or nil. A handler replies with
// FromContext(ctx).Write(ctx, ...).
func FromContext(ctx context.Context) *Conn {
	if s, ok := ctx.(*serveCtx); ok {
		return s.conn
	}
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Close starts the close handshake with code and reason, waits until the
// peer answers it or Config.CloseTimeout passes on the connection's clock,
// then releases the socket, stops the plugins and unblocks every goroutine
// using the connection. It returns nil when the peer answered in time,
// ErrCloseTimeout when it did not, and an error matching ErrClosed when the
// connection was already closing; Close is idempotent.
//
// Called from a handler, a middleware or a control handler (the read loop),
// Close sends the close frame and returns at once; the read loop completes
// the handshake when the handler returns. Called before Serve, Close sends
// the close frame and releases the socket without waiting for an answer,
// since nothing reads it.
//
// code must be one that may be sent (1000-1003, 1007-1014, 3000-4999) and
// reason at most 123 bytes of valid UTF-8; otherwise Close returns an error
// and the connection stays open.
func (c *Conn) Close(code ws.StatusCode, reason string) error {
	if err := CheckClose(code, reason); err != nil {
		return err
	}
	return c.closeWith(code, reason, nil, true)
}

// beginClose records cause as the reason the connection ends, if no close
// has started yet, and then arms the close timer, stops the plugins and runs
// the OnClose hooks. The timer is armed before any close frame is written,
// so that a writer stuck on a peer that stopped reading cannot hold a close
// forever: when the timer fires the socket is closed and the stuck write
// fails. report, if set, is published as a fatal Error event once the hooks
// ran. Until then finish waits (the emitting count): the hooks' effects and
// the Error come before Disconnected and before Done.
func (c *Conn) beginClose(cause *CloseError, report error) (first, serving bool) {
	c.mu.Lock()
	serving = c.serving
	if c.closing {
		c.mu.Unlock()
		return false, serving
	}
	c.closing = true
	c.stopping.Store(true)
	c.cause = cause
	c.closeTimer = c.clock.AfterFunc(c.closeTimeout, c.closeTimedOut)
	if c.cancelServe != nil {
		c.cancelServe()
	}
	hooks := c.closeHooks
	c.closeHooks = nil
	held := !c.finished
	if held {
		c.emitting++
	}
	c.mu.Unlock()
	if len(hooks) > 0 {
		c.hooksGID.Store(goid.Get())
		for _, fn := range hooks {
			fn()
		}
		c.hooksGID.Store(0)
	}
	if report != nil {
		c.publishError(report, true)
	}
	if held {
		c.releaseEmit()
	}
	return true, serving
}

// inCloseHooks reports whether the caller is an OnClose hook of this
// connection, run by beginClose: it must not wait for the connection's end,
// which waits for the hooks.
func (c *Conn) inCloseHooks() bool {
	id := c.hooksGID.Load()
	return id != 0 && id == goid.Get()
}

// releaseEmit ends what Emit or beginClose counted in emitting.
func (c *Conn) releaseEmit() {
	c.mu.Lock()
	c.emitting--
	if c.emitting == 0 {
		c.emitDone.Broadcast()
	}
	c.mu.Unlock()
}

// closeWith starts a close handshake initiated by this side. cause, if set,
// is the error behind it. With wait, it waits until the connection is done
// (unless called on the read loop).
func (c *Conn) closeWith(code ws.StatusCode, reason string, cause error, wait bool) error {
	first, serving := c.beginClose(&CloseError{Code: code, Reason: reason, Err: cause}, nil)
	if !first {
		if wait && !c.onReadLoop() && !c.inCloseHooks() {
			<-c.done
		}
		return fmt.Errorf("%w: close already started", ErrClosed)
	}
	werr := c.writeClose(code, reason)
	if !serving {
		// Nobody reads the peer's answer: release the socket now.
		c.finish(werr)
		return werr
	}
	if werr != nil {
		c.closeSocket()
	}
	if !wait || c.onReadLoop() {
		return nil
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.handshake:
		return nil
	case c.timedOut:
		return ErrCloseTimeout
	default:
		return werr // nil when the peer closed the socket without answering: nothing is left to do
	}
}

func (c *Conn) onReadLoop() bool {
	id := c.readerID.Load()
	return id != 0 && id == goid.Get()
}

func (c *Conn) closeTimedOut() {
	c.mu.Lock()
	if c.finished || c.handshake { // too late: the connection ended, or the peer answered in time
		c.mu.Unlock()
		return
	}
	c.timedOut = true
	if ce, ok := c.cause.(*CloseError); ok && ce.Err == nil {
		cp := *ce
		cp.Err = ErrCloseTimeout
		c.cause = &cp
	}
	c.mu.Unlock()
	c.closeSocket()
}

// fail ends the connection because of err with a close handshake, sending
// the close frame that err calls for. It is used for errors of the
// application (middlewares, handlers, plugins): the peer did nothing wrong
// and may answer.
func (c *Conn) fail(err error) {
	code := CloseCodeOf(err)
	code, reason := wireClose(code, closeReasonOf(err, code))
	c.publishError(err, true)
	_ = c.closeWith(code, reason, err, false)
}

// wireClose makes a close code and reason that came from an error fit for
// the wire: a code that may not be sent becomes 1011, and the reason is cut
// to 123 bytes on a rune boundary (a fixed text if it is not UTF-8).
func wireClose(code ws.StatusCode, reason string) (ws.StatusCode, string) {
	if !validSendCode(code) {
		code, reason = ws.StatusInternalServerError, "internal error"
	}
	if !utf8.ValidString(reason) {
		reason = "invalid close reason"
	}
	for len(reason) > maxControlPayload-2 {
		_, size := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-size]
	}
	return code, reason
}

// failHard ends the connection because of err and closes the socket at
// once, without waiting for an answer: for protocol violations, where the
// peer is not to be trusted to answer (sendCode: the close frame that err
// calls for is sent first), and for a broken socket (no close frame).
func (c *Conn) failHard(err error, sendCode bool) {
	cause := &CloseError{Code: ws.StatusAbnormalClosure, Err: err}
	code := CloseCodeOf(err)
	if sendCode {
		code, reason := wireClose(code, closeReasonOf(err, code))
		cause = &CloseError{Code: code, Reason: reason, Err: err}
	}
	var report error
	if sendCode {
		report = err
	}
	first, serving := c.beginClose(cause, report)
	if first && sendCode {
		_ = c.writeClose(code, cause.Reason)
	}
	c.closeSocket()
	if !serving && !c.inCloseHooks() { // from a hook, the close that runs it finishes
		c.finish(nil)
	}
}

func (c *Conn) closeSocket() { _ = c.nc.Close() }

// finish releases everything once: socket, timer, plugins; publishes
// Disconnected; closes done.
func (c *Conn) finish(readErr error) {
	c.finishOnce.Do(func() {
		c.closeSocket()
		c.mu.Lock()
		c.finished = true
		if c.cause == nil { // lost without a close: no beginClose ran, and none can now
			c.closing = true
			c.stopping.Store(true)
			c.cause = &CloseError{Code: ws.StatusAbnormalClosure, Err: readErr}
		}
		hooks := c.closeHooks
		c.closeHooks = nil
		for c.emitting > 0 { // plugin events and a beginClose's hooks in flight
			c.emitDone.Wait()
		}
		if c.closeTimer != nil {
			c.closeTimer.Stop()
		}
		if c.cancelServe != nil {
			c.cancelServe()
		}
		cause := c.cause.(*CloseError)
		c.mu.Unlock()
		for _, fn := range hooks {
			fn()
		}
		c.wmu.Lock() // the socket is closed: no writer holds this for long
		if c.werr == nil {
			c.werr = ErrClosed // later writes fail quietly: no event after Disconnected
		}
		for c.outEvents > 0 {
			c.outEventsDone.Wait()
		}
		c.wmu.Unlock()
		if events.Enabled[events.Disconnected](c.bus) {
			events.Publish(c.bus, events.Disconnected{
				ConnID: c.id, Code: cause.Code, Reason: cause.Reason, Remote: cause.Remote,
				Err: cause, At: c.clock.Now(),
			})
		}
		close(c.done)
	})
}

func (c *Conn) publishError(err error, fatal bool) {
	if events.Enabled[events.Error](c.bus) {
		events.Publish(c.bus, events.Error{ConnID: c.id, Err: err, Fatal: fatal, At: c.clock.Now()})
	}
}
