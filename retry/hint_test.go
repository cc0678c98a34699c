package retry_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/retry"
)

// RetryAfter reads a delay in seconds from a refused handshake's
// Retry-After, anywhere in the error's chain; anything else is no hint.
func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		want  time.Duration
		ok    bool
	}{
		{"seconds", refused(503, "7"), 7 * s, true},
		{"zero", refused(503, "0"), 0, true},
		{"spaces", refused(503, " 120 "), 120 * s, true},
		{"wrapped twice", fmt.Errorf("attempt 3: %w", refused(429, "7")), 7 * s, true},
		{"HTTP-date", refused(503, "Fri, 27 Nov 2026 00:00:00 GMT"), 0, false},
		{"garbage", refused(503, "soon"), 0, false},
		{"negative", refused(503, "-1"), 0, false},
		{"fraction", refused(503, "1.5"), 0, false},
		{"overflows a Duration", refused(503, "99999999999999999999"), 0, false},
		{"just over a Duration", refused(503, fmt.Sprint(uint64(1<<63)/uint64(time.Second)+1)), 0, false},
		{"no header", refused(503, ""), 0, false},
		{"nil header", &core.HandshakeError{StatusCode: 503}, 0, false},
		{"not a refusal", errors.New("Retry-After: 7"), 0, false},
		{"nil", nil, 0, false},
	} {
		if d, ok := retry.RetryAfter(tc.cause); d != tc.want || ok != tc.ok {
			t.Errorf("%s: RetryAfter = %v, %v; want %v, %v", tc.name, d, ok, tc.want, tc.ok)
		}
	}
}

// A hint's delay replaces the backoff's and is not jittered; it is still
// bounded by the maximum attempts and the maximum elapsed time, and a
// negative one counts as 0. Without a hint for the cause, the backoff
// (and its jitter) decides as before.
func TestPolicyWithHint(t *testing.T) {
	hint := func(cause error) (time.Duration, bool) {
		var he *core.HandshakeError
		if !errors.As(cause, &he) {
			return 0, false
		}
		if he.StatusCode == http.StatusTeapot {
			return -time.Hour, true
		}
		return retry.RetryAfter(cause)
	}
	p := must[*retry.Policy](t)(retry.New(
		retry.WithHint(hint),
		retry.WithJitter(retry.FullJitter), retry.WithRand(newRand(t, 1)),
		retry.WithMaxElapsed(time.Minute),
	))
	for range 100 { // FullJitter would draw from [0, 1 s]
		if d, ok := p.Next(retry.Outage{Attempt: 1, Cause: refused(503, "7")}); !ok || d != 7*s {
			t.Fatalf("hinted Next = %v, %v; want exactly 7s", d, ok)
		}
	}
	if d, ok := p.Next(retry.Outage{Attempt: 1, Cause: refused(http.StatusTeapot, "")}); !ok || d != 0 {
		t.Fatalf("negative hint: %v, %v; want 0, true", d, ok)
	}
	if d, ok := p.Next(retry.Outage{Attempt: 1, Cause: errDown}); !ok || d > s {
		t.Fatalf("no hint: %v, %v; want the jittered backoff in [0, 1s]", d, ok)
	}
	if _, ok := p.Next(retry.Outage{Attempt: 6, Cause: refused(503, "7")}); ok {
		t.Fatal("a hint let a sixth attempt through")
	}
	if _, ok := p.Next(retry.Outage{Attempt: 2, Elapsed: 54 * s, Cause: refused(503, "7")}); ok {
		t.Fatal("a hint let the outage run past its maximum elapsed time")
	}
	if d, ok := p.Next(retry.Outage{Attempt: 2, Elapsed: 53 * s, Cause: refused(503, "7")}); !ok || d != 7*s {
		t.Fatalf("a hint that reaches the bound exactly: %v, %v", d, ok)
	}
}
