package core_test

import (
	"context"
	"errors"
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
		{"wss://bob@example.com/ws", "wss://bob@example.com/ws"}, // a user name is no secret
		{"ws://example.com/ws?token=s3cret#frag", "ws://example.com/ws?token=REDACTED"},
		{"ws://example.com/ws?bad=%zz&token=s3cret", "ws://example.com/ws?token=REDACTED&REDACTED"},
		{"ws://h/%zz?token=s3cret", "ws://h/%zz?REDACTED"}, // does not parse: cut
		{"ws://bob:s3cret@h/%zz", "ws://REDACTED@h/%zz"},
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
