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

type clientSettings struct {
	id               string
	header           http.Header
	protocols        []string
	tls              *tls.Config
	netDial          func(ctx context.Context, network, addr string) (net.Conn, error)
	handshakeTimeout time.Duration
	policy           *retry.Policy // nil: never reconnect
	retryFirst       bool
	retryable        func(error) bool
	beforeDial       func(ctx context.Context, attempt int, header http.Header) error
	onReconnect      func(ctx context.Context, conn *core.Conn) error
	maxQueue         int
	maxQueueBytes    int
}

func defaultClientSettings() clientSettings {
	return clientSettings{
		policy:           retry.Default(),
		handshakeTimeout: core.DefaultHandshakeTimeout,
		retryable:        Retryable,
		maxQueue:         DefaultSendBufferMessages,
		maxQueueBytes:    DefaultSendBufferBytes,
	}
}

// WithRetry sets the reconnect policy of a Client (see package retry).
// Default: retry.Default(), the recipe's 1, 2, 4, 8, 16 s and give up. nil
// turns reconnecting off: the client ends with its first connection.
// Server-side functions ignore it.
func WithRetry(p *retry.Policy) Option {
	return func(s *settings) { s.client.policy = p }
}

// WithRetryFirstDial makes Dial retry the very first connection on the
// reconnect schedule (bounded by Dial's ctx) instead of failing at once.
// Off by default, so that a wrong URL fails fast.
func WithRetryFirstDial() Option {
	return func(s *settings) { s.client.retryFirst = true }
}

// WithRetryClassifier replaces Retryable, which decides whether the error
// that ended a connection or an attempt is worth another attempt.
func WithRetryClassifier(fn func(err error) bool) Option {
	return func(s *settings) {
		if fn == nil {
			s.fail("WithRetryClassifier(nil)")
			return
		}
		s.client.retryable = fn
	}
}

// WithBeforeDial sets a hook called before every dial, the first included
// (attempt 0; reconnect attempts count from 1). header is this attempt's
// copy of the handshake headers: the hook may refresh a token in it. An
// error fails the attempt with that error (the classifier decides whether
// to try again).
func WithBeforeDial(fn func(ctx context.Context, attempt int, header http.Header) error) Option {
	return func(s *settings) {
		if fn == nil {
			s.fail("WithBeforeDial(nil)")
			return
		}
		s.client.beforeDial = fn
	}
}

// WithOnReconnect sets a hook run on every new connection after a
// reconnect, once it is serving and before anything queued while the
// client was down is sent: re-authenticate, resubscribe. Sends made
// meanwhile are queued behind the buffer. ctx ends when the connection or
// the client closes; the hook must return then. An error closes the new
// connection and counts as a failed attempt.
func WithOnReconnect(fn func(ctx context.Context, conn *core.Conn) error) Option {
	return func(s *settings) {
		if fn == nil {
			s.fail("WithOnReconnect(nil)")
			return
		}
		s.client.onReconnect = fn
	}
}

// WithSendBuffer bounds the messages a Client holds while it reconnects:
// at most messages messages and bytes bytes of payload. A Send that would
// exceed either returns an error matching ErrBufferFull. Defaults:
// DefaultSendBufferMessages, DefaultSendBufferBytes. Both must be positive.
func WithSendBuffer(messages, bytes int) Option {
	return func(s *settings) {
		if messages <= 0 || bytes <= 0 {
			s.fail("WithSendBuffer(%d, %d): both must be positive", messages, bytes)
			return
		}
		s.client.maxQueue, s.client.maxQueueBytes = messages, bytes
	}
}

// WithHeader sets headers sent with every opening handshake of a Client
// (Authorization, Cookie, ...). The header is copied.
func WithHeader(h http.Header) Option {
	return func(s *settings) { s.client.header = h.Clone() }
}

// WithSubprotocols sets the subprotocols a Client offers, in order of
// preference.
func WithSubprotocols(protocols ...string) Option {
	return func(s *settings) { s.client.protocols = append([]string(nil), protocols...) }
}

// WithTLSConfig sets the TLS configuration for wss:// URLs. Default: the
// system roots, certificates verified.
func WithTLSConfig(c *tls.Config) Option {
	return func(s *settings) { s.client.tls = c }
}

// WithNetDial sets how a Client opens its transport (default: TCP). Tests
// use it to dial in-memory transports.
func WithNetDial(fn func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(s *settings) {
		if fn == nil {
			s.fail("WithNetDial(nil)")
			return
		}
		s.client.netDial = fn
	}
}

// WithHandshakeTimeout bounds each dial and opening handshake of a Client,
// on the clock. Default: core.DefaultHandshakeTimeout (10 s), so that a
// reconnect into a network that swallows the handshake fails and the
// retry policy moves on instead of waiting forever. d must be positive.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(s *settings) {
		if d <= 0 {
			s.fail("WithHandshakeTimeout(%v): must be positive", d)
			return
		}
		s.client.handshakeTimeout = d
	}
}

// WithClientID names a Client in events and its connections' ids
// (id.1, id.2, ... one per dial). Default: a generated id.
func WithClientID(id string) Option {
	return func(s *settings) {
		if id == "" {
			s.fail("WithClientID(\"\")")
			return
		}
		s.client.id = id
	}
}
