package tether

import (
	"context"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/retry"
)

// The names a program needs to use tether through this package alone. They
// are the core package's (aliases, not copies): a tether.Frame is a
// core.Frame.
type (
	// Conn is one WebSocket connection; see core.Conn.
	Conn = core.Conn
	// Frame is one whole data message; see core.Frame.
	Frame = core.Frame
	// Handler handles one message; see core.Handler.
	Handler = core.Handler
	// Middleware wraps a Handler; see core.Middleware.
	Middleware = core.Middleware
	// Plugin attaches behaviour to every connection; see core.Plugin.
	Plugin = core.Plugin
	// CloseError is the cause of a connection's end; see core.CloseError.
	CloseError = core.CloseError
	// StatusCode is a WebSocket close code (ws.StatusCode).
	StatusCode = ws.StatusCode
	// OpCode is a WebSocket frame's opcode (ws.OpCode).
	OpCode = ws.OpCode
)

// Message kinds, for Frame.Op, Client.Send and Conn.Write.
const (
	OpText   = ws.OpText
	OpBinary = ws.OpBinary
)

// The close codes a program sends most (RFC 6455 section 7.4.1); any code
// from 3000 to 4999 is the application's own.
const (
	StatusNormalClosure   = ws.StatusNormalClosure       // 1000: done
	StatusGoingAway       = ws.StatusGoingAway           // 1001: shutting down or leaving
	StatusPolicyViolation = ws.StatusPolicyViolation     // 1008: the peer broke a rule of ours
	StatusInternalError   = ws.StatusInternalServerError // 1011: something failed on our side
)

// Errors a program tests for most, with errors.Is; each is core's.
var (
	// ErrClosed: the connection or client is closed or closing. It is
	// net.ErrClosed.
	ErrClosed = core.ErrClosed
	// ErrInvalidConfig: an option, a Config field or an argument is out of
	// range.
	ErrInvalidConfig = core.ErrInvalidConfig
	// ErrMessageTooBig: a message exceeded the size limit (1009).
	ErrMessageTooBig = core.ErrMessageTooBig
	// ErrGaveUp: the client stopped reconnecting (Client.Err, and a Send
	// after it, match it). It is retry.ErrGaveUp.
	ErrGaveUp = retry.ErrGaveUp
)

// FromContext returns the connection whose handler was given ctx, or nil:
// a handler replies with FromContext(ctx).Write(ctx, ...).
func FromContext(ctx context.Context) *Conn { return core.FromContext(ctx) }
