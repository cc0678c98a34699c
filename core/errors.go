package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// ErrClosed is returned by operations on a connection that is closed or
// closing. It is net.ErrClosed, so errors.Is(err, net.ErrClosed) holds too.
var ErrClosed = net.ErrClosed

// Sentinel errors. Each is wrapped, never returned bare, so test with
// errors.Is.
var (
	// ErrMessageTooBig: a message exceeded the size limit (close code 1009).
	ErrMessageTooBig = errors.New("tether: message too big")
	// ErrInvalidUTF8: a text message or close reason was not valid UTF-8
	// (close code 1007).
	ErrInvalidUTF8 = errors.New("tether: invalid UTF-8")
	// ErrProtocol: the peer violated RFC 6455 (close code 1002). The
	// concrete error is a *ProtocolError saying what was wrong.
	ErrProtocol = errors.New("tether: protocol error")
	// ErrPolicy: a message broke a policy of this endpoint (close code 1008).
	// Middlewares wrap it to refuse a message and close the connection.
	ErrPolicy = errors.New("tether: policy violation")
	// ErrCloseTimeout: the close handshake did not complete within
	// Config.CloseTimeout (the peer did not answer our close frame, or our
	// frame, or our answer to the peer's, could not be written in time);
	// the socket was closed anyway.
	ErrCloseTimeout = errors.New("tether: close handshake timed out")
	// ErrHandshakeTimeout: the opening handshake took longer than
	// Dialer.HandshakeTimeout or Upgrader.HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("tether: handshake timed out")
	// ErrInvalidConfig: a Config, Dialer or Upgrader field is out of range.
	ErrInvalidConfig = errors.New("tether: invalid configuration")
	// ErrBadURL: a URL given to Dial is malformed or its scheme is not ws,
	// wss, http or https.
	ErrBadURL = errors.New("tether: bad URL")
	// ErrBadOpcode: Write was given an opcode other than ws.OpText or
	// ws.OpBinary.
	ErrBadOpcode = errors.New("tether: data frames must be text or binary")
	// ErrControlTooBig: a ping payload or close reason is too long for a
	// control frame (125 bytes of payload).
	ErrControlTooBig = errors.New("tether: control frame payload over 125 bytes")
	// ErrBadCloseCode: a close code that may not be sent on the wire.
	ErrBadCloseCode = errors.New("tether: close code not allowed")
	// ErrAlreadyServing: Serve was called twice on one connection.
	ErrAlreadyServing = errors.New("tether: connection already serving")
	// ErrOriginNotAllowed: a server refused a handshake because of its
	// Origin header (HTTP 403).
	ErrOriginNotAllowed = errors.New("tether: origin not allowed")
	// ErrAborted: the connection was ended by Abort without a cause.
	ErrAborted = errors.New("tether: connection aborted")
	// ErrPanic is matched by the error of a recovered panic (a *PanicError):
	// see Config.OnPanic and middleware.Recover.
	ErrPanic = errors.New("tether: handler panicked")
)

// PanicError is a recovered panic of the inbound chain: its value and the
// stack where it happened. It matches ErrPanic; Unwrap returns the value
// when it is an error. A connection it ends closes with 1011, and the
// reason sent to the peer does not carry the panic's text.
type PanicError struct {
	Value any
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string { return fmt.Sprintf("tether: handler panicked: %v", e.Value) }

// Is reports whether target is ErrPanic.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// ProtocolError says how the peer violated RFC 6455. It matches ErrProtocol
// with errors.Is.
type ProtocolError struct {
	What string
}

// Error implements error.
func (e *ProtocolError) Error() string { return "tether: protocol error: " + e.What }

// Is reports whether target is ErrProtocol.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

func protocolError(what string) error { return &ProtocolError{What: what} }

// CloseError is the cause of a connection's end, and what Serve, Err and
// the Disconnected event report. Code and Reason are those of the close
// frame that ended the connection, sent or received; Code is
// ws.StatusAbnormalClosure (1006) when the connection was lost without a
// close frame. Remote tells who initiated the close. Err, if set, is the
// underlying cause (ErrMessageTooBig, a network error, ...), reachable with
// errors.Is and errors.As.
//
// Returned from a middleware or handler, a *CloseError closes the connection
// with exactly its Code and Reason.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
	Remote bool
	Err    error
}

// Error implements error: who closed, the code, the reason and the cause.
func (e *CloseError) Error() string {
	who := "local"
	if e.Remote {
		who = "remote"
	}
	s := "tether: connection closed (" + who + ") with code " + strconv.Itoa(int(e.Code))
	if e.Reason != "" {
		s += " " + strconv.Quote(e.Reason)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *CloseError) Unwrap() error { return e.Err }

// CloseStatus returns the close code carried by err (the Code of a
// *CloseError in its chain), or 0 if there is none.
func CloseStatus(err error) ws.StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// closeCodeOf returns the close code a connection sends when err ends it:
// the Code of a *CloseError, 1009 for ErrMessageTooBig, 1007 for
// ErrInvalidUTF8, 1002 for ErrProtocol, 1008 for ErrPolicy, and 1011
// (internal error) for anything else. Handler documents the mapping.
func closeCodeOf(err error) ws.StatusCode {
	var ce *CloseError
	switch {
	case errors.As(err, &ce):
		return ce.Code
	case errors.Is(err, ErrMessageTooBig):
		return ws.StatusMessageTooBig
	case errors.Is(err, ErrInvalidUTF8):
		return ws.StatusInvalidFramePayloadData
	case errors.Is(err, ErrProtocol):
		return ws.StatusProtocolError
	case errors.Is(err, ErrPolicy):
		return ws.StatusPolicyViolation
	default:
		return ws.StatusInternalServerError
	}
}

// closeReasonOf is the reason sent on the wire for err. It never carries the
// error's text, which may hold internals, except a *CloseError's own Reason.
func closeReasonOf(err error, code ws.StatusCode) string {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	switch code {
	case ws.StatusMessageTooBig:
		return "message too big"
	case ws.StatusInvalidFramePayloadData:
		return "invalid UTF-8"
	case ws.StatusProtocolError:
		var pe *ProtocolError
		if errors.As(err, &pe) {
			return pe.What
		}
		return "protocol error"
	case ws.StatusPolicyViolation:
		return "policy violation"
	default:
		return "internal error"
	}
}

// HandshakeError is returned by Dial when the server answered the opening
// handshake with an HTTP status other than 101. StatusCode tells a refusal
// (401, 403) from a transient failure (502, 503), and Header holds the
// response's headers (Retry-After, for one).
type HandshakeError struct {
	StatusCode int
	Header     http.Header
}

// Error implements error.
func (e *HandshakeError) Error() string {
	return fmt.Sprintf("tether: handshake refused with HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// MarshalJSON renders the error with its headers redacted (RedactHeader):
// events carrying it (retry.GaveUp.LastErr, retry.Scheduled.Cause) may be
// logged as JSON without leaking a Set-Cookie.
func (e *HandshakeError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		StatusCode int
		Header     http.Header `json:",omitempty"`
	}{e.StatusCode, RedactHeader(e.Header)})
}

// LogValue renders the error for log/slog with its headers redacted.
func (e *HandshakeError) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("status", e.StatusCode), slog.Any("header", RedactHeader(e.Header)))
}

// Temporary reports whether the status suggests trying again later (5xx,
// 408, 429).
func (e *HandshakeError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// CheckClose reports whether code and reason make a close frame that may be
// sent: code 1000-1003, 1007-1014 or 3000-4999 (else ErrBadCloseCode), and
// reason at most 123 bytes (else ErrControlTooBig) of valid UTF-8 (else
// ErrInvalidUTF8). Close checks this; wrappers that close later check first.
func CheckClose(code ws.StatusCode, reason string) error {
	if !validSendCode(code) {
		return fmt.Errorf("%w: %d", ErrBadCloseCode, code)
	}
	if len(reason) > maxControlPayload-2 {
		return fmt.Errorf("%w: close reason of %d bytes", ErrControlTooBig, len(reason))
	}
	if !utf8.ValidString(reason) {
		return fmt.Errorf("%w: close reason", ErrInvalidUTF8)
	}
	return nil
}

// validSendCode reports whether code may be sent in a close frame (RFC 6455
// section 7.4): 1000-1003, 1007-1014 and 3000-4999.
func validSendCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
