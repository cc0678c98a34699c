package core

import (
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultMaxMessageSize  = 16 << 20 // 16 MiB
	DefaultCloseTimeout    = 5 * time.Second
	DefaultReadBufferSize  = 4096
	DefaultWriteBufferSize = 4096

	minReadBufferSize = 256
)

// Config holds what a connection needs on either side. The zero Config is
// valid: every field has a default.
type Config struct {
	// Clock drives every timing of the connection and of its plugins: the
	// close handshake timeout, heartbeats, backoff. Default: the real clock.
	Clock clockwork.Clock

	// Bus receives the connection's events. Nil publishes nothing.
	Bus *events.Bus

	// Handler receives every inbound data message, after Inbound. Nil
	// discards messages (a connection used only to write).
	Handler Handler

	// Inbound wraps Handler; Outbound wraps the connection's writer. Both are
	// composed once, when the connection is created.
	Inbound  Chain
	Outbound Chain

	// Plugins attach behaviour (heartbeat, ...) to the connection when it
	// is created, in this order, before Dial, Accept or Upgrade returns it.
	// See Plugin.
	Plugins []Plugin

	// MaxMessageSize bounds an inbound message, fragments included; a bigger
	// one closes the connection with 1009. Zero means DefaultMaxMessageSize;
	// negative is an error.
	MaxMessageSize int64

	// CloseTimeout bounds the close handshake: how long the connection
	// waits for the peer's answer to its close frame (and for the close
	// frame to be written) before closing the socket anyway; Close itself
	// never waits. Zero means DefaultCloseTimeout; negative is an error.
	CloseTimeout time.Duration

	// ReadBufferSize and WriteBufferSize size the connection's buffers.
	// Frames that fit the read buffer are handed to the handler without a
	// copy. Zero means 4096; negative is an error; a read buffer below 256
	// bytes is raised to 256, so that any control frame fits.
	ReadBufferSize  int
	WriteBufferSize int

	// ID names the connection in events and logs. Empty means a generated
	// id, unique in the process.
	ID string

	// OnPanic, if set, makes the read loop recover a panic of the inbound
	// chain (the plugins' middlewares, the application's, the handler)
	// instead of letting it end the process: OnPanic is called on the read
	// loop with the connection, the panic's value and its stack, then the
	// connection closes with 1011 as for a handler's error (the Error
	// event's Err is a *PanicError). It costs a deferred call per message.
	// tether.Dial and tether.NewServer set it (they run handlers on
	// goroutines of their own); nil lets a panic propagate.
	OnPanic func(c *Conn, value any, stack []byte)
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.MaxMessageSize < 0 {
		return c, fmt.Errorf("%w: MaxMessageSize %d is negative", ErrInvalidConfig, c.MaxMessageSize)
	}
	if c.CloseTimeout < 0 {
		return c, fmt.Errorf("%w: CloseTimeout %v is negative", ErrInvalidConfig, c.CloseTimeout)
	}
	if c.ReadBufferSize < 0 || c.WriteBufferSize < 0 {
		return c, fmt.Errorf("%w: buffer sizes %d/%d must not be negative", ErrInvalidConfig, c.ReadBufferSize, c.WriteBufferSize)
	}
	for i, p := range c.Plugins {
		if p == nil {
			return c, fmt.Errorf("%w: Plugins[%d] is nil", ErrInvalidConfig, i)
		}
	}
	if _, err := c.Inbound.compose(nil); err != nil {
		return c, fmt.Errorf("inbound: %w", err)
	}
	if _, err := c.Outbound.compose(nil); err != nil {
		return c, fmt.Errorf("outbound: %w", err)
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.ReadBufferSize < minReadBufferSize {
		c.ReadBufferSize = minReadBufferSize
	}
	if c.WriteBufferSize == 0 {
		c.WriteBufferSize = DefaultWriteBufferSize
	}
	return c, nil
}
