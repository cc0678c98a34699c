package core

import (
	"context"
	"fmt"
	"reflect"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/events"
)

// Plugin attaches behaviour to a connection without core knowing it: the
// heartbeat package is one.
//
// Run is called once per connection, on the goroutine that calls Serve,
// before the first frame is read. ctx derives from the ctx given to Serve
// and is done as soon as the connection starts closing: the plugin's signal
// to stop its timers (OnClose is the cheap way to hear it). Writes made with it
// are flushed at once, unlike a handler's replies. Run must not block: a
// plugin that waits arms a timer on c.Clock() rather than starting a
// goroutine per connection. A non-nil error closes the connection with a
// code derived from it (see CloseCodeOf).
type Plugin interface {
	Run(ctx context.Context, c *Conn) error
}

// PluginFunc adapts a function to Plugin.
type PluginFunc func(ctx context.Context, c *Conn) error

// Run calls f(ctx, c).
func (f PluginFunc) Run(ctx context.Context, c *Conn) error { return f(ctx, c) }

var _ Plugin = PluginFunc(nil)

// ControlHandler observes an inbound control frame (ws.OpPing or
// ws.OpPong) on the read loop. payload is valid only during the call. It
// must not block: it runs on the connection's only reader.
type ControlHandler func(op ws.OpCode, payload []byte)

// OnControl registers h to observe inbound pings and pongs; the connection
// still answers pings itself. It is meant for plugins, from Plugin.Run:
// once the read loop has started it returns an error matching
// ErrAlreadyServing, so the read loop reads the handler list without a lock.
// It must not be called concurrently with Serve from another goroutine.
func (c *Conn) OnControl(h ControlHandler) error {
	if h == nil {
		return fmt.Errorf("%w: nil ControlHandler", ErrInvalidConfig)
	}
	if c.reading.Load() {
		return fmt.Errorf("%w: control handlers are added from Plugin.Run, before the read loop starts", ErrAlreadyServing)
	}
	c.controlHandlers = append(c.controlHandlers, h)
	return nil
}

// OnClose registers fn to run once, when the connection starts closing
// (whoever starts it: Close, the peer, an error, Abort, a lost socket),
// after the plugins' ctx was cancelled. It runs on the goroutine that
// started the close, with no connection lock held, and must not block; the
// connection's Disconnected and Done wait for it. It may call Close, Abort
// or Write on the connection: those return at once (the close is under
// way) instead of waiting for the end it is part of. It
// is the cheap way for a plugin to stop its timer: one entry in a slice,
// where context.AfterFunc costs a few hundred bytes per connection. If the
// close already started, fn runs at once on the caller's goroutine. A nil
// fn is an error.
func (c *Conn) OnClose(fn func()) error {
	if fn == nil {
		return fmt.Errorf("%w: nil OnClose func", ErrInvalidConfig)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		fn()
		return nil
	}
	c.closeHooks = append(c.closeHooks, fn)
	c.mu.Unlock()
	return nil
}

// UseInbound wraps the connection's inbound chain in mw, which becomes the
// outermost inbound middleware of this connection only. A plugin uses it to
// see data messages before the application does, and to consume its own
// (a text heartbeat never reaches the handler). Like OnControl it is meant
// for Plugin.Run, and fails with ErrAlreadyServing once the read loop has
// started. A nil mw, or one that returns a nil Handler, is an error.
func (c *Conn) UseInbound(mw Middleware) error {
	if mw == nil {
		return fmt.Errorf("%w: nil Middleware", ErrInvalidConfig)
	}
	if c.reading.Load() {
		return fmt.Errorf("%w: inbound middlewares are added from Plugin.Run, before the read loop starts", ErrAlreadyServing)
	}
	h := mw(c.in)
	if h == nil {
		return fmt.Errorf("%w: middleware returned a nil Handler", ErrInvalidConfig)
	}
	c.in = h
	return nil
}

// WriteDirect sends one data message, op ws.OpText or ws.OpBinary, through
// the connection's single writer like Write, but bypasses the outbound
// middleware chain and publishes no MessageOut event: for a plugin's own
// traffic (a text heartbeat), which is not the application's.
func (c *Conn) WriteDirect(ctx context.Context, op ws.OpCode, p []byte) error {
	if ctx == nil {
		return errNilContext
	}
	if op != ws.OpText && op != ws.OpBinary {
		return fmt.Errorf("%w: opcode %d", ErrBadOpcode, op)
	}
	return c.writeFrame(ctx, op, p, false)
}

// TrackActivity turns on the connection's frame counter, read by Activity:
// from then on every inbound frame costs one atomic add, and no clock read.
// Connections nobody asked for it pay nothing. Like OnControl it is meant
// for Plugin.Run, and fails with ErrAlreadyServing once the read loop has
// started.
func (c *Conn) TrackActivity() error {
	if c.reading.Load() {
		return fmt.Errorf("%w: activity tracking is turned on from Plugin.Run, before the read loop starts", ErrAlreadyServing)
	}
	c.countFrames = true
	return nil
}

// Activity returns the number of frames received since TrackActivity was
// called, data and control alike (0 without it). It only grows: a plugin
// that reads it twice learns whether the peer sent anything in between.
func (c *Conn) Activity() uint64 { return c.activity.Load() }

// Abort ends the connection at once because of cause, without a close
// handshake: for a peer known to be gone, such as one whose heartbeat
// stopped. It publishes a fatal Error event and closes the socket, which
// ends the read loop and unblocks any writer stuck on the socket; it does
// not wait for that. The connection's cause becomes a *CloseError with code
// 1006 (abnormal closure) wrapping cause (ErrAborted when cause is nil).
//
// If a close had already started, its cause is kept, the socket is closed
// all the same, and Abort returns an error matching ErrClosed.
func (c *Conn) Abort(cause error) error {
	if cause == nil {
		cause = ErrAborted
	}
	first, serving := c.beginClose(&CloseError{Code: ws.StatusAbnormalClosure, Err: cause}, cause)
	c.closeSocket()
	if !serving && !c.inCloseHooks() { // from a hook, the close that runs it finishes
		c.finish(nil)
	}
	if !first {
		return fmt.Errorf("%w: close already started", ErrClosed)
	}
	return nil
}

// Emit publishes e, an event about the connection, on its bus, so that it
// is delivered before the connection's Disconnected. Once the connection
// is finishing (its socket released, Disconnected about to be published),
// e is dropped and Emit returns false. With no subscriber for E, Emit does nothing and allocates nothing.
// Plugins use it for their own events; it never blocks on the socket.
func Emit[E events.Event](c *Conn, e E) bool {
	if c == nil || !events.Enabled[E](c.bus) {
		return false
	}
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return false
	}
	c.emitting++
	c.mu.Unlock()
	events.Publish(c.bus, e)
	c.releaseEmit()
	return true
}

type keyValue struct{ key, value any }

// SetValue attaches plugin state to the connection under key, replacing
// what was there; a nil value removes it. Keys follow the rules of
// context.WithValue: use an unexported type of the plugin's own package so
// that plugins cannot collide. A nil or incomparable key is an error
// (ErrInvalidConfig). Safe for concurrent use.
func (c *Conn) SetValue(key, value any) error {
	if key == nil || !reflect.TypeOf(key).Comparable() {
		return fmt.Errorf("%w: SetValue key must be comparable and not nil", ErrInvalidConfig)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, kv := range c.values {
		if kv.key == key {
			if value == nil {
				c.values = append(c.values[:i], c.values[i+1:]...)
			} else {
				c.values[i].value = value
			}
			return nil
		}
	}
	if value != nil {
		c.values = append(c.values, keyValue{key, value})
	}
	return nil
}

// Value returns the plugin state attached under key with SetValue, or nil.
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
