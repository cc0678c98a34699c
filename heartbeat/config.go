package heartbeat

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 10 * time.Second
)

// Default text-mode payloads, as the browser recipe sends them.
var (
	DefaultPingPayload = []byte("ping")
	DefaultPongPayload = []byte("pong")
)

// ErrTimeout is the cause of a connection the heartbeat declared dead:
// errors.Is(err, heartbeat.ErrTimeout) holds for the error returned by the
// connection's Serve and Err, and for the Disconnected event's Err.
var ErrTimeout = errors.New("heartbeat: peer did not answer in time")

// Mode selects how heartbeats travel on the wire.
type Mode uint8

const (
	// Protocol uses RFC 6455 ping and pong control frames.
	Protocol Mode = iota
	// Text uses application messages (Config.PingPayload, PongPayload).
	Text
)

// String returns "protocol" or "text".
func (m Mode) String() string {
	switch m {
	case Protocol:
		return "protocol"
	case Text:
		return "text"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Kind is what a Classify function says an inbound message is.
type Kind uint8

const (
	// NotHeartbeat is an application message: it goes on to the handler.
	NotHeartbeat Kind = iota
	// Ping is the peer's ping: consumed and answered with the pong payload.
	Ping
	// Pong is the answer to our ping: consumed.
	Pong
)

// Config configures the heartbeat. The zero Config is the recipe's
// heartbeat in protocol mode: a ping every 30 s, dead after 10 s without
// an answer.
type Config struct {
	// Interval between pings, measured from one ping to the next. Zero
	// means DefaultInterval; negative is an error.
	Interval time.Duration

	// Timeout is how long a ping may go unanswered before it counts as
	// missed. Zero means DefaultTimeout, or Interval if that is shorter; it
	// may not exceed Interval.
	Timeout time.Duration

	// MaxMissed is how many consecutive missed pings are tolerated: the
	// connection is declared dead at miss number MaxMissed+1. Zero (the
	// default) declares it dead at the first miss; negative is an error.
	MaxMissed int

	// AnyFrame makes any inbound frame count as proof of life: a ping is
	// sent only if nothing arrived during the last interval, and a ping
	// counts as answered if anything arrived before its timeout. A busy
	// connection then costs one timer event per interval and no ping.
	AnyFrame bool

	// Mode selects protocol (default) or text heartbeats.
	Mode Mode

	// PingPayload is what a ping carries: in text mode the message text
	// (default "ping"), in protocol mode the control frame's payload
	// (default empty, at most 125 bytes).
	PingPayload []byte

	// PongPayload is, in text mode, the answer to a ping (default "pong").
	// Unused in protocol mode, where the connection answers pings itself.
	PongPayload []byte

	// Classify, in text mode, tells heartbeat messages from application
	// messages, for heartbeats that are not plain text such as
	// {"type":"ping"}. It runs on the read loop for every inbound message
	// and must be fast; the payload is valid only during the call. Nil
	// means exact comparison of text messages with PingPayload and
	// PongPayload.
	Classify func(op ws.OpCode, payload []byte) Kind
}

var errConfig = core.ErrInvalidConfig

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Interval < 0:
		return c, fmt.Errorf("%w: heartbeat Interval %v is negative", errConfig, c.Interval)
	case c.Timeout < 0:
		return c, fmt.Errorf("%w: heartbeat Timeout %v is negative", errConfig, c.Timeout)
	case c.MaxMissed < 0:
		return c, fmt.Errorf("%w: heartbeat MaxMissed %d is negative", errConfig, c.MaxMissed)
	case c.Mode != Protocol && c.Mode != Text:
		return c, fmt.Errorf("%w: unknown heartbeat mode %v", errConfig, c.Mode)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultTimeout, c.Interval)
	}
	if c.Timeout > c.Interval {
		return c, fmt.Errorf("%w: heartbeat Timeout %v exceeds Interval %v", errConfig, c.Timeout, c.Interval)
	}
	if c.Mode == Protocol {
		if len(c.PingPayload) > 125 {
			return c, fmt.Errorf("%w: protocol ping payload of %d bytes (at most 125)", errConfig, len(c.PingPayload))
		}
		c.PingPayload = bytes.Clone(c.PingPayload)
		return c, nil
	}
	var err error
	if c.PingPayload, c.PongPayload, err = textPayloads(c.PingPayload, c.PongPayload); err != nil {
		return c, err
	}
	return c, nil
}

// textPayloads validates text-mode payloads and fills in the defaults. The
// results are copies: a caller changing its slices later changes nothing.
func textPayloads(ping, pong []byte) ([]byte, []byte, error) {
	if len(ping) == 0 {
		ping = DefaultPingPayload
	}
	if len(pong) == 0 {
		pong = DefaultPongPayload
	}
	if !utf8.Valid(ping) || !utf8.Valid(pong) {
		return nil, nil, fmt.Errorf("%w: heartbeat text payloads must be valid UTF-8", errConfig)
	}
	if bytes.Equal(ping, pong) {
		return nil, nil, fmt.Errorf("%w: heartbeat ping and pong payloads are both %q", errConfig, ping)
	}
	return bytes.Clone(ping), bytes.Clone(pong), nil
}

// classifier returns the Classify function of a text-mode config.
func classifier(c Config) func(ws.OpCode, []byte) Kind {
	if c.Classify != nil {
		return c.Classify
	}
	ping, pong := c.PingPayload, c.PongPayload
	return func(op ws.OpCode, p []byte) Kind {
		if op != ws.OpText || (len(p) != len(ping) && len(p) != len(pong)) {
			return NotHeartbeat
		}
		switch {
		case bytes.Equal(p, ping):
			return Ping
		case bytes.Equal(p, pong):
			return Pong
		}
		return NotHeartbeat
	}
}
