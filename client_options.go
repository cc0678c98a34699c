package tether

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/retry"
)

// Defaults of the Client's send buffer, which holds messages sent while
// the client reconnects.
const (
	DefaultSendBufferMessages = 1024
	DefaultSendBufferBytes    = 4 << 20 // 4 MiB
)

type dialSettings struct {
	conn             connSettings
	id               string
	header           http.Header
	protocols        []string
	tls              *tls.Config
	netDial          func(ctx context.Context, network, addr string) (net.Conn, error)
	handshakeTimeout time.Duration
	reconnector      core.Reconnector // nil: never reconnect
	policy           *retry.Policy    // for the default reconnector
	retryable        func(error) bool // for the default reconnector
	custom           bool             // WithReconnector replaced the default
	classifierSet    bool             // WithRetryClassifier was given
	retryFirst       bool
	beforeDial       func(ctx context.Context, attempt int, header http.Header) error
	onReconnect      func(ctx context.Context, conn *Conn) error
	maxQueue         int
	maxQueueBytes    int
}

func newDialSettings(opts []DialOption) (*dialSettings, core.Config, error) {
	s := &dialSettings{
		policy:           retry.Default(),
		retryable:        Retryable,
		handshakeTimeout: core.DefaultHandshakeTimeout,
		maxQueue:         DefaultSendBufferMessages,
		maxQueueBytes:    DefaultSendBufferBytes,
	}
	for _, o := range opts {
		if o == nil {
			s.conn.fail("nil DialOption")
			continue
		}
		o.applyDial(s)
	}
	if s.custom && s.classifierSet {
		s.conn.fail("WithRetryClassifier has no effect with WithReconnector: the reconnect strategy decides what to retry")
	}
	cfg, err := s.conn.build()
	if err != nil {
		return nil, cfg, err
	}
	if !s.custom && s.policy != nil {
		s.reconnector = &retry.Reconnect{Policy: s.policy, Retryable: s.retryable}
	}
	return s, cfg, nil
}

type dialOption func(*dialSettings)

func (o dialOption) applyDial(s *dialSettings) { o(s) }

// WithRetry sets the policy of the reconnect plugin (retry.Reconnect):
// the delays and when to give up. Default: retry.Default(), the recipe's
// 1, 2, 4, 8, 16 s and give up. p must not be nil: WithoutRetry turns
// reconnecting off.
func WithRetry(p *retry.Policy) DialOption {
	return dialOption(func(s *dialSettings) {
		if p == nil {
			s.conn.fail("WithRetry(nil): use WithoutRetry to turn reconnecting off")
			return
		}
		s.policy, s.custom, s.reconnector = p, false, nil
	})
}

// WithoutRetry turns reconnecting off: the client ends with its first
// connection, with that connection's cause.
func WithoutRetry() DialOption {
	return dialOption(func(s *dialSettings) { s.policy, s.custom, s.reconnector = nil, false, nil })
}

// WithReconnector replaces the reconnect plugin with another strategy,
// which decides after every loss whether and when the client dials again
// (see core.Reconnector); WithRetry and WithRetryClassifier then no longer
// apply. r must not be nil.
func WithReconnector(r core.Reconnector) DialOption {
	return dialOption(func(s *dialSettings) {
		if r == nil {
			s.conn.fail("WithReconnector(nil)")
			return
		}
		s.reconnector, s.custom = r, true
	})
}

// WithRetryFirstDial makes Dial retry the very first connection on the
// reconnect schedule (bounded by Dial's ctx) instead of failing at once.
// Off by default, so that a wrong URL fails fast.
func WithRetryFirstDial() DialOption {
	return dialOption(func(s *dialSettings) { s.retryFirst = true })
}

// WithRetryClassifier replaces Retryable, which decides for the reconnect
// plugin whether the error that ended a connection or an attempt is worth
// another attempt.
func WithRetryClassifier(fn func(err error) bool) DialOption {
	return dialOption(func(s *dialSettings) {
		if fn == nil {
			s.conn.fail("WithRetryClassifier(nil)")
			return
		}
		s.retryable, s.classifierSet = fn, true
	})
}

// WithBeforeDial sets a hook called before every dial, the first included
// (attempt 0; reconnect attempts count from 1). header is this attempt's
// copy of the handshake headers: the hook may refresh a token in it. An
// error fails the attempt with that error (the classifier decides whether
// to try again).
func WithBeforeDial(fn func(ctx context.Context, attempt int, header http.Header) error) DialOption {
	return dialOption(func(s *dialSettings) {
		if fn == nil {
			s.conn.fail("WithBeforeDial(nil)")
			return
		}
		s.beforeDial = fn
	})
}

// WithOnReconnect sets a hook run on every new connection after a
// reconnect, once it is serving and before anything queued while the
// client was down is sent: re-authenticate, resubscribe. Sends made
// meanwhile are queued behind the buffer. ctx ends when the connection or
// the client closes; the hook must return then. An error closes the new
// connection and counts as a failed attempt.
func WithOnReconnect(fn func(ctx context.Context, conn *Conn) error) DialOption {
	return dialOption(func(s *dialSettings) {
		if fn == nil {
			s.conn.fail("WithOnReconnect(nil)")
			return
		}
		s.onReconnect = fn
	})
}

// WithSendBuffer bounds the messages a Client holds while it reconnects:
// at most messages messages and bytes bytes of payload. A Send that would
// exceed either returns an error matching ErrBufferFull. Defaults:
// DefaultSendBufferMessages, DefaultSendBufferBytes. Both must be positive.
func WithSendBuffer(messages, bytes int) DialOption {
	return dialOption(func(s *dialSettings) {
		if messages <= 0 || bytes <= 0 {
			s.conn.fail("WithSendBuffer(%d, %d): both must be positive", messages, bytes)
			return
		}
		s.maxQueue, s.maxQueueBytes = messages, bytes
	})
}

// WithHeader sets headers sent with every opening handshake of a Client
// (Authorization, Cookie, ...). The header is copied.
func WithHeader(h http.Header) DialOption {
	return dialOption(func(s *dialSettings) { s.header = h.Clone() })
}

// WithSubprotocols sets the subprotocols a Client offers, in order of
// preference.
func WithSubprotocols(protocols ...string) DialOption {
	return dialOption(func(s *dialSettings) { s.protocols = append([]string(nil), protocols...) })
}

// WithTLSConfig sets the TLS configuration for wss:// URLs. Default: the
// system roots, certificates verified.
func WithTLSConfig(c *tls.Config) DialOption {
	return dialOption(func(s *dialSettings) { s.tls = c })
}

// WithNetDial sets how a Client opens its transport (default: TCP). Tests
// use it to dial in-memory transports.
func WithNetDial(fn func(ctx context.Context, network, addr string) (net.Conn, error)) DialOption {
	return dialOption(func(s *dialSettings) {
		if fn == nil {
			s.conn.fail("WithNetDial(nil)")
			return
		}
		s.netDial = fn
	})
}

// WithHandshakeTimeout bounds each dial and opening handshake of a Client,
// on the clock. Default: core.DefaultHandshakeTimeout (10 s), so that a
// reconnect into a network that swallows the handshake fails and the
// retry policy moves on instead of waiting forever. d must be positive.
func WithHandshakeTimeout(d time.Duration) DialOption {
	return dialOption(func(s *dialSettings) {
		if d <= 0 {
			s.conn.fail("WithHandshakeTimeout(%v): must be positive", d)
			return
		}
		s.handshakeTimeout = d
	})
}

// WithClientID names a Client in events and its connections' ids
// (id.1, id.2, ... one per dial). Default: a generated id.
func WithClientID(id string) DialOption {
	return dialOption(func(s *dialSettings) {
		if id == "" {
			s.conn.fail("WithClientID(\"\")")
			return
		}
		s.id = id
	})
}
