package tether_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
)

func TestRetryableClassifier(t *testing.T) {
	closeErr := func(code ws.StatusCode, cause error) error {
		return fmt.Errorf("wrapped: %w", &core.CloseError{Code: code, Err: cause})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"heartbeat timeout", closeErr(ws.StatusAbnormalClosure, fmt.Errorf("%w: 1 ping", heartbeat.ErrTimeout)), true},
		{"abnormal close", closeErr(ws.StatusAbnormalClosure, io.EOF), true},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"connection reset", closeErr(ws.StatusAbnormalClosure, syscall.ECONNRESET), true},
		{"handshake timeout", fmt.Errorf("dial: %w", core.ErrHandshakeTimeout), true},
		{"1000 normal", closeErr(ws.StatusNormalClosure, nil), true},
		{"1001 going away", closeErr(ws.StatusGoingAway, nil), true},
		{"1011 server error", closeErr(ws.StatusInternalServerError, nil), true},
		{"1012 restart", closeErr(1012, nil), true},
		{"1013 try again later", closeErr(1013, nil), true},
		{"4000 application", closeErr(4000, nil), true},
		{"HTTP 500", &core.HandshakeError{StatusCode: 500}, true},
		{"HTTP 502", &core.HandshakeError{StatusCode: 502}, true},
		{"HTTP 503", &core.HandshakeError{StatusCode: 503}, true},
		{"HTTP 429", &core.HandshakeError{StatusCode: 429}, true},
		{"1008 policy", closeErr(ws.StatusPolicyViolation, nil), false},
		{"1003 unsupported data", closeErr(ws.StatusUnsupportedData, nil), false},
		{"1002 protocol error", closeErr(ws.StatusProtocolError, nil), false},
		{"1009 too big", closeErr(ws.StatusMessageTooBig, nil), false},
		{"HTTP 401", &core.HandshakeError{StatusCode: 401}, false},
		{"HTTP 403", &core.HandshakeError{StatusCode: 403}, false},
		{"HTTP 404", &core.HandshakeError{StatusCode: 404}, false},
		{"bad URL", fmt.Errorf("%w: scheme", core.ErrBadURL), false},
		{"unknown CA", x509.UnknownAuthorityError{}, false},
		{"cancelled", context.Canceled, false},
		{"1011 wrapping a handler's cancelled ctx", closeErr(ws.StatusInternalServerError, context.Canceled), true},
		{"1011 wrapping a bad plugin", closeErr(ws.StatusInternalServerError, fmt.Errorf("plugin: %w", core.ErrInvalidConfig)), false},
	} {
		if got := tether.Retryable(tc.err); got != tc.want {
			t.Errorf("%s: Retryable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A user classifier replaces the default: here nothing is retried.
func TestClientCustomClassifier(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	var seen error
	c := dial(t, s, b.url(), tether.WithRetryClassifier(func(err error) bool { seen = err; return false }))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1 1006")
	s.rec.expect("gave up after 0")
	<-c.Done()
	if core.CloseStatus(seen) != ws.StatusAbnormalClosure {
		t.Fatalf("the classifier saw %v", seen)
	}
}

// A failing on-reconnect hook closes the new connection and counts as a
// failed attempt: the counter goes on instead of resetting.
func TestClientHookFailureCountsAsFailedAttempt(t *testing.T) {
	s := newSim(t)
	b := newBackend(t)
	calls := 0
	hook := func(context.Context, *core.Conn) error {
		calls++
		if calls == 1 {
			return errors.New("auth refused")
		}
		return nil
	}
	dial(t, s, b.url(), tether.WithOnReconnect(hook))
	s.rec.expect("connected k.1")
	b.drop()
	s.rec.expect("disconnected k.1")
	s.rec.expect("scheduled #1 in 1s")
	s.wait(1e9)
	s.rec.expect("attempt #1")
	s.rec.expect("connected k.2")
	s.rec.expect("disconnected k.2 1011") // closed with "reconnect hook failed"
	s.rec.expect("scheduled #2 in 2s")
	s.wait(2e9)
	s.rec.expect("attempt #2")
	s.rec.expect("connected k.3")
	s.rec.expect("reconnected k.3 after 2")
}

// Bad input: errors, never panics.
func TestClientBadInput(t *testing.T) {
	b := newBackend(t)
	if _, err := tether.Dial(nil, b.url()); !errors.Is(err, core.ErrInvalidConfig) { // a nil context on purpose
		t.Fatalf("nil ctx: %v", err)
	}
	for name, opt := range map[string]tether.DialOption{
		"buffer 0 messages":   tether.WithSendBuffer(0, 10),
		"buffer -1 bytes":     tether.WithSendBuffer(10, -1),
		"nil classifier":      tether.WithRetryClassifier(nil),
		"nil before-dial":     tether.WithBeforeDial(nil),
		"nil on-reconnect":    tether.WithOnReconnect(nil),
		"nil net dial":        tether.WithNetDial(nil),
		"zero handshake":      tether.WithHandshakeTimeout(0),
		"empty id":            tether.WithClientID(""),
		"bad heartbeat":       tether.WithHeartbeat(heartbeat.Config{Interval: -1}),
		"nil option":          nil,
		"timeout > interval":  tether.WithHeartbeat(heartbeat.Config{Interval: 1e9, Timeout: 2e9}),
		"negative close wait": tether.WithCloseTimeout(-1),
		"nil policy":          tether.WithRetry(nil),
		"nil reconnector":     tether.WithReconnector(nil),
	} {
		if _, err := tether.Dial(testCtx(t), b.url(), opt); !errors.Is(err, core.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	s := newSim(t)
	c := dial(t, s, b.url())
	if err := c.Send(testCtx(t), ws.OpPing, nil); !errors.Is(err, core.ErrBadOpcode) {
		t.Fatalf("Send of a ping: %v", err)
	}
	if err := c.Send(nil, ws.OpText, nil); !errors.Is(err, core.ErrInvalidConfig) { // a nil context on purpose
		t.Fatalf("nil ctx: %v", err)
	}
	if err := c.Close(1005, ""); !errors.Is(err, core.ErrBadCloseCode) {
		t.Fatalf("Close(1005): %v", err)
	}
	if c.ID() != "k" || c.Conn() == nil {
		t.Fatalf("ID %q, Conn %v", c.ID(), c.Conn())
	}
	if err := c.Reconnect(nil); !errors.Is(err, core.ErrInvalidConfig) { // a nil context on purpose
		t.Fatalf("Reconnect(nil): %v", err)
	}
	if err := c.Shutdown(nil, ws.StatusNormalClosure, ""); !errors.Is(err, core.ErrInvalidConfig) { // a nil context on purpose
		t.Fatalf("Shutdown(nil): %v", err)
	}
}
