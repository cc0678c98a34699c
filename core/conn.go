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
)

// Conn is one WebSocket connection, client or server side: a single reader
// that runs every inbound message through the inbound middleware chain, and
// a single serialized writer behind the outbound chain.
//
// # Concurrency
//
// Write, WriteText, Close, Done, Err, Value and the accessors may be called
// from any goroutine, concurrently. Frames from concurrent writers never
// interleave: data, ping, pong and close frames all go through one
// serialized writer. Serve must be called exactly once; it runs the read
// loop on the calling goroutine. Handlers, middlewares and control hooks
// run on that goroutine, one frame at a time.
//
// No method waits for the connection's end: Close starts the close
// handshake and returns; Done tells when the connection has ended and Err
// why. A handler ends its connection by returning an error (or by calling
// Close and returning).
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
//
// What only a plugin may do (observe control frames, add middlewares to
// one connection, write past the outbound chain, abort, publish its
// events) is on the Handle a Plugin receives when it attaches.
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
	onPanic      func(*Conn, any, []byte)
	in, out      Handler
	handle       Handle

	// Writer state, guarded by wmu.
	wmu          sync.Mutex
	writers      atomic.Int32 // writers waiting for or holding wmu (not the read loop)
	readMore     bool         // the read loop has more buffered input: defer its replies' flush
	dirty        bool         // bytes in bw not yet flushed
	closeSent    bool         // a close frame went out: no more frames may follow
	werr         error        // sticky write error
	closePending atomic.Bool  // a close frame waits for the writer (closeCode, closeReason; under mu)

	// Read state, owned by the read loop.
	msg             []byte    // reassembly buffer for fragmented or large messages
	lctx            *serveCtx // the handlers' ctx (&lctxv); its identity marks the read loop's writes
	lctxv           serveCtx
	stopping        atomic.Bool // mirrors closing, for the read loop's per-frame check
	controlHandlers []ControlHandler
	activity        atomic.Uint64 // inbound frames so far, if countFrames; see Handle.Activity
	countFrames     bool          // Handle.CountFrames was called while attaching
	attached        atomic.Bool   // the plugins have attached: registrations are over

	// Lifecycle, guarded by mu.
	mu          sync.Mutex
	serving     bool
	closing     bool  // a close started (by us, the peer or an error)
	cause       error // why the connection ends; set once
	handshake   bool  // we sent a close frame and the peer answered it
	timedOut    bool
	closeTimer  clockwork.Timer
	closeCode   ws.StatusCode // the close frame to send, once closePending
	closeReason string
	finished    bool // the socket is released; Disconnected comes when refs drop to 0
	refs        int  // events in flight that must precede Disconnected (Emit, hooks, MessageOut)
	done        chan struct{}
	cancelServe context.CancelFunc // ends the handlers' ctx; called once a close starts
	values      []keyValue         // plugin state (Handle.SetValue)
	closeHooks  []func()           // Handle.OnClose; run once when the close starts
}

var connSeq atomic.Uint64

// newConn wraps an upgraded socket, publishes Connected (the handshake is
// done) and attaches the plugins. It fails when a middleware returns a nil
// Handler or a plugin fails to attach; the connection is then closed (the
// peer is told why with a close frame) and the socket released.
func newConn(nc net.Conn, br *bufio.Reader, bw *bufio.Writer, client bool, proto string, cfg Config) (*Conn, error) {
	if br == nil {
		br = bufio.NewReaderSize(nc, cfg.ReadBufferSize)
	}
	if bw == nil && cfg.WriteBufferSize != DefaultWriteBufferSize {
		bw = bufio.NewWriterSize(nc, cfg.WriteBufferSize)
	} // else the first write takes a buffer from writerPool
	id := cfg.ID
	if id == "" {
		var b [24]byte
		id = string(strconv.AppendUint(append(b[:0], 'c'), connSeq.Add(1), 10)) // one allocation, not two
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
		onPanic:      cfg.OnPanic,
		done:         make(chan struct{}),
		refs:         1, // the connection's own, dropped by finish
	}
	c.handle.c = c
	c.lctxv = serveCtx{conn: c, Context: context.Background()}
	c.lctx = &c.lctxv
	if events.Enabled[events.Connected](c.bus) {
		events.Publish(c.bus, events.Connected{
			ConnID: c.id, Client: c.client, Subprotocol: c.proto,
			LocalAddr: addrString(nc.LocalAddr()), RemoteAddr: addrString(nc.RemoteAddr()),
			At: c.clock.Now(),
		})
	}
	if err := c.attach(cfg); err != nil {
		c.failHard(err, true)
		return nil, err
	}
	return c, nil
}

// attach runs every plugin's Attach, in order, then composes the chains:
// on both paths the plugins' middlewares sit between the wire and the
// application's, the first plugin nearest the wire (outermost inbound,
// innermost outbound).
func (c *Conn) attach(cfg Config) error {
	defer c.attached.Store(true)
	h := &c.handle
	// c.out stays nil while there is no outbound middleware: Write then
	// calls writeData itself (and a plugin that writes while it attaches
	// goes straight to the wire).
	for i, p := range cfg.Plugins {
		if err := p.Attach(h); err != nil {
			return fmt.Errorf("tether: plugin %d (%T): %w", i, p, err)
		}
	}
	in, err := cfg.Inbound.compose(c.publishIn(cfg.Handler))
	if err != nil {
		return err
	}
	for i := len(h.inbound) - 1; i >= 0; i-- { // the first plugin's ends up outermost
		if in = h.inbound[i](in); in == nil {
			return fmt.Errorf("%w: a plugin's inbound middleware returned a nil Handler", ErrInvalidConfig)
		}
	}
	if len(h.outbound) == 0 && cfg.Outbound.Len() == 0 {
		c.in = in
		h.inbound, h.outbound = nil, nil
		return nil
	}
	out := Handler(c.writeData)
	for _, mw := range h.outbound { // the first plugin's ends up innermost
		if out = mw(out); out == nil {
			return fmt.Errorf("%w: a plugin's outbound middleware returned a nil Handler", ErrInvalidConfig)
		}
	}
	if out, err = cfg.Outbound.compose(out); err != nil {
		return err
	}
	c.in, c.out = in, out
	h.inbound, h.outbound = nil, nil
	return nil
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

// Done returns a channel that is closed once the connection has ended:
// socket released, plugins stopped, Disconnected published.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns the cause of the connection's end, a *CloseError, or nil
// while it has not ended (Done is open).
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

// Serve runs the read loop on the calling goroutine until the connection
// has ended, and returns the cause, a *CloseError (errors.As). When ctx is
// done the connection is closed with 1001 (going away). Serve must be
// called once; a second call returns ErrAlreadyServing. Called after a
// close started without it (Close or Handle.Abort before Serve), it reads
// nothing and returns the cause once the connection has ended: at once
// when it has, else when the close frame is out or CloseTimeout passed.
func (c *Conn) Serve(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	c.mu.Lock()
	if c.serving {
		c.mu.Unlock()
		return fmt.Errorf("%w: Serve was called before", ErrAlreadyServing)
	}
	c.serving = true
	if c.closing {
		// Closed before anyone read: the close released the socket. Its
		// end waits only for events already in flight.
		c.mu.Unlock()
		<-c.done
		return c.Err()
	}
	loopCtx, cancel := context.WithCancel(ctx)
	c.lctx.Context = loopCtx
	c.cancelServe = cancel
	c.mu.Unlock()

	// Close with 1001 when the caller's ctx ends. The goroutine runs only
	// then; Serve waits for it before returning (it does not block: a
	// close never waits for the writer or the socket).
	closerDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closerDone)
		_ = c.closeWith(ws.StatusGoingAway, "going away", nil)
	})

	err := c.readLoop()
	c.finish(err)

	if !stop() {
		<-closerDone
	}
	<-c.done // events in flight (a plugin's Emit on another goroutine) precede it
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

// Close starts the close handshake with code and reason and returns: it
// hands the close frame to the connection's writer (a write under way
// sends it next; otherwise a goroutine does) and waits neither for the
// socket nor for the peer's answer, so it returns at once even when the
// peer stopped reading. The read loop ends the connection when the answer
// comes; if none comes within Config.CloseTimeout on the connection's
// clock, the socket is closed anyway and the cause's Err is
// ErrCloseTimeout. Wait for the end with Done; Err then says how it ended.
//
// Close returns nil when it started the close, and an error matching
// ErrClosed when a close had already started (Close is idempotent). Called
// before Serve, Close also releases the socket once the close frame is
// out, since nothing would read the answer, and Done closes then.
//
// code must be one that may be sent (1000-1003, 1007-1014, 3000-4999) and
// reason at most 123 bytes of valid UTF-8; otherwise Close returns an error
// and the connection stays open.
func (c *Conn) Close(code ws.StatusCode, reason string) error {
	if err := CheckClose(code, reason); err != nil {
		return err
	}
	return c.closeWith(code, reason, nil)
}

// beginClose records cause as the reason the connection ends, if no close
// has started yet, and then arms the close timer (arm: unless the caller
// closes the socket at once), ends the handlers' ctx and runs the OnClose
// hooks. The timer is armed before any close frame is written, so that a
// writer stuck on a peer that stopped reading cannot hold a close forever:
// when the timer fires the socket is closed and the stuck write fails. report, if set, is published as a fatal Error event
// once the hooks ran. Both come before Disconnected: beginClose holds a
// reference meanwhile.
func (c *Conn) beginClose(cause *CloseError, report error, arm bool) (first, serving bool) {
	c.mu.Lock()
	serving = c.serving
	if c.closing {
		c.mu.Unlock()
		return false, serving
	}
	c.closing = true
	c.stopping.Store(true)
	c.cause = cause
	if arm {
		c.closeTimer = c.clock.AfterFunc(c.closeTimeout, c.closeTimedOut)
	}
	if c.cancelServe != nil {
		c.cancelServe()
	}
	hooks := c.closeHooks
	c.closeHooks = nil
	c.refs++ // closing is set before finished, so this is never after the end
	c.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	if report != nil {
		c.publishError(report, true)
	}
	c.release()
	return true, serving
}

// release drops a reference; the last one out ends the connection.
func (c *Conn) release() {
	c.mu.Lock()
	c.refs--
	last := c.refs == 0
	var cause *CloseError
	if last {
		cause = c.cause.(*CloseError)
	}
	c.mu.Unlock()
	if !last {
		return
	}
	if events.Enabled[events.Disconnected](c.bus) {
		events.Publish(c.bus, events.Disconnected{
			ConnID: c.id, Code: cause.Code, Reason: cause.Reason, Remote: cause.Remote,
			Err: cause, At: c.clock.Now(),
		})
	}
	close(c.done)
}

// closeWith starts a close handshake initiated by this side. cause, if set,
// is the error behind it. It never waits for the connection's end.
func (c *Conn) closeWith(code ws.StatusCode, reason string, cause error) error {
	first, serving := c.beginClose(&CloseError{Code: code, Reason: reason, Err: cause}, nil, true)
	if !first {
		return fmt.Errorf("%w: close already started", ErrClosed)
	}
	if !serving {
		// Nobody reads the peer's answer: send the close frame, then
		// release the socket. Not on the caller's goroutine: the write
		// may wait on a peer that stopped reading, until the close timer
		// closes the socket.
		go func() {
			c.writeClose(code, reason)
			c.finish(nil)
		}()
		return nil
	}
	c.sendClose(code, reason)
	return nil
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
	code := closeCodeOf(err)
	code, reason := wireClose(code, closeReasonOf(err, code))
	c.reportError(err, true)
	_ = c.closeWith(code, reason, err)
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
// calls for is sent first, if the writer is free), and for a broken socket
// (no close frame).
func (c *Conn) failHard(err error, sendCode bool) {
	cause := &CloseError{Code: ws.StatusAbnormalClosure, Err: err}
	code := closeCodeOf(err)
	if sendCode {
		code, reason := wireClose(code, closeReasonOf(err, code))
		cause = &CloseError{Code: code, Reason: reason, Err: err}
	}
	var report error
	if sendCode {
		report = err
	}
	first, serving := c.beginClose(cause, report, sendCode) // without a close frame to send, the socket closes now
	if first && sendCode {
		c.writeClose(code, cause.Reason) // the socket is closed next: the frame goes out first
	}
	c.closeSocket()
	if !serving {
		c.finish(nil)
	}
}

// abort ends the connection at once because of cause, without a close
// handshake (Handle.Abort, a write whose ctx ended).
func (c *Conn) abort(cause error, report bool) error {
	var rep error
	if report {
		rep = cause
	}
	first, serving := c.beginClose(&CloseError{Code: ws.StatusAbnormalClosure, Err: cause}, rep, false) // the socket closes now
	c.closeSocket()
	if !serving {
		c.finish(nil)
	}
	if !first {
		return fmt.Errorf("%w: close already started", ErrClosed)
	}
	return nil
}

func (c *Conn) closeSocket() { _ = c.nc.Close() }

// finish releases everything once: socket, timer, the handlers' ctx; runs
// the OnClose hooks if no close ran them; then drops the connection's own
// reference, so that Disconnected and Done follow as soon as the events
// in flight are published. It never waits for another goroutine, except
// for a writer to leave the writer, which the closed socket makes prompt.
func (c *Conn) finish(readErr error) {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	if c.cause == nil { // lost without a close: no beginClose ran, and none can now
		c.closing = true
		c.stopping.Store(true)
		c.cause = &CloseError{Code: ws.StatusAbnormalClosure, Err: readErr}
	}
	hooks := c.closeHooks
	c.closeHooks = nil
	timer := c.closeTimer
	cancel := c.cancelServe
	c.mu.Unlock()
	c.closeSocket()
	if timer != nil {
		timer.Stop()
	}
	if cancel != nil {
		cancel()
	}
	for _, fn := range hooks {
		fn()
	}
	c.wmu.Lock() // the socket is closed: no writer holds this for long
	if c.werr == nil {
		c.werr = ErrClosed // later writes fail quietly: no event after Disconnected
	}
	c.closePending.Store(false)
	c.wmu.Unlock()
	c.release()
}

// hold takes a reference for an event that must precede Disconnected, and
// reports false once the connection has finished.
func (c *Conn) hold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return false
	}
	c.refs++
	return true
}

// reportError publishes an Error event for err unless the connection has
// finished: from a goroutine other than the read loop (a Write whose
// outbound middleware refused it), the event would otherwise race the
// connection's end and could follow Disconnected. The reference it holds
// meanwhile keeps Disconnected after it.
func (c *Conn) reportError(err error, fatal bool) {
	if !events.Enabled[events.Error](c.bus) || !c.hold() {
		return
	}
	c.publishError(err, fatal)
	c.release()
}

func (c *Conn) publishError(err error, fatal bool) {
	if events.Enabled[events.Error](c.bus) {
		events.Publish(c.bus, events.Error{ConnID: c.id, Err: err, Fatal: fatal, At: c.clock.Now()})
	}
}

type keyValue struct{ key, value any }

// Value returns the state a plugin attached to the connection under key
// (Handle.SetValue), or nil. Plugins export accessors built on it, such as
// heartbeat.StatsOf.
func (c *Conn) Value(key any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, kv := range c.values {
		if kv.key == key {
			return kv.value
		}
	}
	return nil
}
