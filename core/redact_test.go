package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tetherws/tether/core"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wss://example.com/ws", "wss://example.com/ws"},
		{"wss://example.com/ws?token=s3cret", "wss://example.com/ws?token=REDACTED"},
		{"wss://example.com/ws?room=1&access_token=s3cret", "wss://example.com/ws?access_token=REDACTED&room=REDACTED"},
		{"wss://example.com/ws?sig=a&sig=b", "wss://example.com/ws?sig=REDACTED"},
		{"wss://bob:s3cret@example.com/ws", "wss://bob:REDACTED@example.com/ws"},
		{"wss://bob@example.com/ws", "wss://REDACTED@example.com/ws"}, // a user name alone may be a key
		{"ws://example.com/ws?token=s3cret#frag", "ws://example.com/ws?token=REDACTED"},
		{"ws://example.com/ws?bad=%zz&token=s3cret", "ws://example.com/ws?bad=REDACTED&token=REDACTED"},
		{"ws://h/%zz?token=s3cret", "ws://h/%zz?REDACTED"}, // does not parse: cut
		{"ws://bob:s3cret@h/%zz", "ws://REDACTED@h/%zz"},
		{"wss://h/ws?eyJhbGciOiJIUzI1NiJ9.s3cret.sig", "wss://h/ws?REDACTED"},              // a bare token
		{"wss://h/ws?auth&s3cretkey", "wss://h/ws?REDACTED"},                               // bare parts
		{"wss://h/ws?token:s3cret&room=1", "wss://h/ws?room=REDACTED&REDACTED"},            // not a pair
		{"wss://h/ws?eyJhbGciOiJIUzI1NiJ9s3cretlongerthan32bytes=", "wss://h/ws?REDACTED"}, // a key no name is
		{"wss://sk_live_s3cret@h/ws", "wss://REDACTED@h/ws"},                               // an API key as user name
	} {
		if got := core.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactHeader(t *testing.T) {
	h := http.Header{
		"Authorization":          {"Bearer s3cret"},
		"Cookie":                 {"a=s3cret", "b=s3cret"},
		"Sec-Websocket-Protocol": {"bearer.s3cret"},
		"X-Request-Id":           {"42"},
	}
	got := core.RedactHeader(h)
	if got.Get("X-Request-Id") != "42" || len(got["Cookie"]) != 2 {
		t.Fatalf("RedactHeader changed the shape: %v", got)
	}
	for k, vs := range got {
		for _, v := range vs {
			if strings.Contains(v, "s3cret") {
				t.Errorf("%s: %q kept", k, v)
			}
		}
	}
	if h.Get("Authorization") != "Bearer s3cret" {
		t.Fatal("RedactHeader changed its argument")
	}
	if core.RedactHeader(nil) != nil {
		t.Fatal("RedactHeader(nil) != nil")
	}
}

// Errors that quote a URL quote it redacted, and still match what they
// wrap.
func TestDialErrorsRedactTheURL(t *testing.T) {
	_, err := core.Dial(testCtx(t), "ws://127.0.0.1:1/x?token=s3cret", core.Config{})
	var op *net.OpError
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "token=REDACTED") || !errors.As(err, &op) {
		t.Fatalf("Dial = %v", err)
	}
	for _, raw := range []string{"ws://?token=s3cret", "ws://h/%zz?token=s3cret", "ftp://h/?token=s3cret", "ws://bob:s3cret@/"} {
		_, err := core.Dial(context.Background(), raw, core.Config{})
		if !errors.Is(err, core.ErrBadURL) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Dial(%q) = %v", raw, err)
		}
	}
}

// MaxHandshakeBytes may not be negative, on either side.
func TestMaxHandshakeBytesChecked(t *testing.T) {
	_, err := (&core.Dialer{MaxHandshakeBytes: -1}).Dial(context.Background(), "ws://127.0.0.1:1/")
	if !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Dial = %v", err)
	}
	a, b := net.Pipe()
	defer b.Close()
	if _, err := (&core.Upgrader{MaxHandshakeBytes: -1}).Accept(a); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Accept = %v", err)
	}
}

// An event carrying a refusal, logged as JSON (encoding/json or a slog
// JSON handler), does not leak the server's Set-Cookie.
func TestHandshakeErrorJSONIsRedacted(t *testing.T) {
	he := &core.HandshakeError{StatusCode: 401, Header: http.Header{"Set-Cookie": {"sid=s3cret"}, "Retry-After": {"5"}}}
	b, err := json.Marshal(struct{ LastErr error }{he})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("gave up", "err", he)
	for _, out := range []string{string(b), buf.String()} {
		if strings.Contains(out, "s3cret") || !strings.Contains(out, "401") || !strings.Contains(out, "Retry-After") {
			t.Fatalf("logged %s", out)
		}
	}
}
