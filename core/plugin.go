package core

import (
	"context"
	"fmt"

	"github.com/gobwas/ws"
)

// Plugin attaches behaviour to a connection without core knowing it: the
// heartbeat and retry packages are plugins.
//
// Run is called once per connection, on the goroutine that calls Serve,
// before the first frame is read. ctx derives from the ctx given to Serve
// and is done as soon as the connection starts closing: the plugin's signal
// to stop its timers (context.AfterFunc suits this). Writes made with it
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
