package core

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
)

// Plugin attaches behaviour to every connection made with it (see
// Config.Plugins), without core knowing it: the heartbeat is one, and a
// third party's plugin can do everything the heartbeat does.
//
// Attach is called once per connection, when the connection is created
// (before Dial, Accept or Upgrade returns it, and so before Serve), in the
// order of Config.Plugins. It registers what the plugin needs on h
// (control-frame hooks, middlewares, the frame counter, an OnClose hook)
// and arms its timers on h.Clock(); it must not block. A plugin that needs
// state per connection creates it here; one Plugin value serves any number
// of connections. A non-nil error fails the connection: it is closed with a
// code derived from the error (1011 for most) and Dial, Accept or Upgrade
// returns the error. Until Attach returns, the connection belongs to the
// dial or accept under way: a goroutine the plugin starts must not write
// on it before then.
type Plugin interface {
	Attach(h *Handle) error
}

// PluginFunc adapts a function to Plugin.
type PluginFunc func(h *Handle) error

// Attach calls f(h).
func (f PluginFunc) Attach(h *Handle) error { return f(h) }

var _ Plugin = PluginFunc(nil)

// ErrAttachOnly is returned by the Handle methods that register something
// (OnControl, UseInbound, UseOutbound, CountFrames) when called after the
// plugin's Attach returned: the read loop reads what they register without
// a lock.
var ErrAttachOnly = errors.New("tether: only while the plugin attaches")

// Handle is what a plugin gets for one connection: the operations that
// only a plugin may perform. Registrations (OnControl, UseInbound,
// UseOutbound, CountFrames) are made during Attach; the other methods may
// be called at any time, from any goroutine, for as long as the plugin
// keeps the handle. Every plugin of a connection gets the same Handle.
type Handle struct {
	c        *Conn
	inbound  []Middleware
	outbound []Middleware
}

// Conn returns the connection.
func (h *Handle) Conn() *Conn { return h.c }

// Clock returns the clock that drives the connection's timings: a plugin
// arms its timers on it, so that tests can run them in simulated time.
func (h *Handle) Clock() clockwork.Clock { return h.c.clock }

// Bus returns the bus the connection publishes on, or nil. Publish a
// plugin's own events with Emit rather than directly, to keep them before
// the connection's Disconnected.
func (h *Handle) Bus() *events.Bus { return h.c.bus }

func (h *Handle) registering(what string) error {
	if h.c.attached.Load() {
		return fmt.Errorf("%w: %s", ErrAttachOnly, what)
	}
	return nil
}

// ControlHandler observes an inbound control frame (ws.OpPing or
// ws.OpPong) on the read loop. payload is valid only during the call. It
// must not block: it runs on the connection's only reader.
type ControlHandler func(op ws.OpCode, payload []byte)

// OnControl registers fn to observe inbound pings and pongs; the
// connection still answers pings itself. Attach only.
func (h *Handle) OnControl(fn ControlHandler) error {
	if fn == nil {
		return fmt.Errorf("%w: nil ControlHandler", ErrInvalidConfig)
	}
	if err := h.registering("OnControl"); err != nil {
		return err
	}
	h.c.controlHandlers = append(h.c.controlHandlers, fn)
	return nil
}

// UseInbound adds mw to this connection's inbound path, between the wire
// and the application's middlewares: it sees every data message before the
// application does, and may consume its own (a text heartbeat never reaches
// the handler). Among plugins, the first registered is outermost. Attach
// only. A nil mw, or one that returns a nil Handler, is an error (the
// latter fails the connection).
func (h *Handle) UseInbound(mw Middleware) error {
	if mw == nil {
		return fmt.Errorf("%w: nil Middleware", ErrInvalidConfig)
	}
	if err := h.registering("UseInbound"); err != nil {
		return err
	}
	h.inbound = append(h.inbound, mw)
	return nil
}

// UseOutbound adds mw to this connection's outbound path, between the
// application's outbound middlewares and the wire: it sees every message
// written with Conn.Write after the application's middlewares did, and may
// change, drop or refuse it. Among plugins, the first registered is
// innermost (nearest the wire), mirroring UseInbound. Writes made with
// WriteDirect do not pass through it. Attach only.
func (h *Handle) UseOutbound(mw Middleware) error {
	if mw == nil {
		return fmt.Errorf("%w: nil Middleware", ErrInvalidConfig)
	}
	if err := h.registering("UseOutbound"); err != nil {
		return err
	}
	h.outbound = append(h.outbound, mw)
	return nil
}

// CountFrames turns on the connection's frame counter, read by Activity:
// from then on every inbound frame costs one atomic add, and no clock read.
// Connections nobody asked for it pay nothing. Attach only.
func (h *Handle) CountFrames() error {
	if err := h.registering("CountFrames"); err != nil {
		return err
	}
	h.c.countFrames = true
	return nil
}

// Activity returns the number of frames received so far, data and control
// alike, if CountFrames was called (0 otherwise). It only grows: a plugin
// that reads it twice learns whether the peer sent anything in between.
func (h *Handle) Activity() uint64 { return h.c.activity.Load() }

// OnClose registers fn to run once, when the connection starts closing
// (whoever starts it: Close, the peer, an error, Abort, a lost socket),
// after the handlers' ctx was cancelled. It runs on the goroutine that
// started the close, with no connection lock held, and must not block; the
// connection's Disconnected and Done come after it returns. It may call
// anything on the connection or the handle: none of it waits for the
// connection's end. If the close already started, fn runs at once on the
// caller's goroutine. It is the cheap way for a plugin to stop its timer:
// one entry in a slice. A nil fn is an error.
func (h *Handle) OnClose(fn func()) error {
	if fn == nil {
		return fmt.Errorf("%w: nil OnClose func", ErrInvalidConfig)
	}
	c := h.c
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

// WriteDirect sends one data message, op ws.OpText or ws.OpBinary, through
// the connection's single writer like Conn.Write, but past every outbound
// middleware, and publishes no MessageOut event: for a plugin's own traffic
// (a text heartbeat), which is not the application's. ctx bounds it as it
// bounds Conn.Write.
func (h *Handle) WriteDirect(ctx context.Context, op ws.OpCode, p []byte) error {
	if ctx == nil {
		return errNilContext
	}
	if op != ws.OpText && op != ws.OpBinary {
		return fmt.Errorf("%w: opcode %d", ErrBadOpcode, op)
	}
	return h.c.writeFrame(ctx, op, p, false)
}

// Ping sends a ping control frame with payload (at most 125 bytes). The
// peer's pong reaches the control handlers registered with OnControl.
func (h *Handle) Ping(ctx context.Context, payload []byte) error {
	if ctx == nil {
		return errNilContext
	}
	if len(payload) > maxControlPayload {
		return fmt.Errorf("%w: ping of %d bytes", ErrControlTooBig, len(payload))
	}
	return h.c.writeFrame(ctx, ws.OpPing, payload, false)
}

// Abort ends the connection at once because of cause, without a close
// handshake: for a peer known to be gone, such as one whose heartbeat
// stopped. It publishes a fatal Error event and closes the socket, which
// ends the read loop and unblocks any writer stuck on the socket, and
// returns without waiting for the end. The connection's cause becomes a
// *CloseError with code 1006 (abnormal closure) wrapping cause (ErrAborted
// when cause is nil).
//
// If a close had already started, its cause is kept, the socket is closed
// all the same, and Abort returns an error matching ErrClosed.
func (h *Handle) Abort(cause error) error {
	if cause == nil {
		cause = ErrAborted
	}
	return h.c.abort(cause, true)
}

// SetValue attaches plugin state to the connection under key, replacing
// what was there; a nil value removes it. Conn.Value reads it. Keys follow
// the rules of context.WithValue: use an unexported type of the plugin's
// own package so that plugins cannot collide. A nil or incomparable key is
// an error (ErrInvalidConfig).
func (h *Handle) SetValue(key, value any) error {
	if key == nil || !reflect.TypeOf(key).Comparable() {
		return fmt.Errorf("%w: SetValue key must be comparable and not nil", ErrInvalidConfig)
	}
	c := h.c
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

// Emit publishes e, an event of the plugin's own type about the
// connection, on the connection's bus, so that it is delivered before the
// connection's Disconnected. It reports whether e was published: false
// when nobody subscribes to E (then it does nothing and allocates nothing)
// and once the connection has finished (its socket released, Disconnected
// about to be published). It never blocks, so a plugin may call it under
// a lock of its own.
func Emit[E events.Event](h *Handle, e E) bool {
	if h == nil || !events.Enabled[E](h.c.bus) {
		return false
	}
	c := h.c
	if !c.hold() {
		return false
	}
	events.Publish(c.bus, e)
	c.release()
	return true
}
