package tether

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
)

// Retryable is the default classifier of a Client: it reports whether err,
// which ended a connection or a dial attempt, is worth another attempt.
//
// Retried: a heartbeat timeout, a connection lost without a close frame
// (1006), network errors (refused, reset, unreachable, timeouts), a
// handshake timeout, close codes 1000, 1001 (going away), 1011 (server
// error), 1012 (restart), 1013 (try again later), 1014 and application
// codes 3000-4999, and handshake refusals with HTTP 5xx, 408 or 429.
//
// Not retried, because the next attempt would fail the same way: close codes
// 1002 (protocol error), 1003 (unsupported data), 1007 (invalid data), 1008
// (policy violation), 1009 (message too big) and 1010; other HTTP 4xx at
// the handshake (401, 403, 404, ...); a bad URL or configuration; a TLS
// certificate that does not verify; a cancelled context.
func Retryable(err error) bool {
	if err == nil {
		return true
	}
	if errors.Is(err, heartbeat.ErrTimeout) || errors.Is(err, core.ErrHandshakeTimeout) {
		return true
	}
	if errors.Is(err, core.ErrBadURL) || errors.Is(err, core.ErrInvalidConfig) {
		return false // a misconfiguration, even one that closed a connection with 1011
	}
	// A connection's end says why by its close code, whatever error it
	// wraps (a handler's own cancelled context is no reason to give up).
	switch core.CloseStatus(err) {
	case 0: // no *core.CloseError in the chain
	case ws.StatusProtocolError, ws.StatusUnsupportedData, ws.StatusInvalidFramePayloadData,
		ws.StatusPolicyViolation, ws.StatusMessageTooBig, ws.StatusMandatoryExt:
		return false
	default:
		return true
	}
	var he *core.HandshakeError
	if errors.As(err, &he) {
		return he.Temporary()
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) {
		return false
	}
	return true
}
