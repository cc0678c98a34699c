package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(asCommandEnv) == "1" { // the test binary run as the tether command (TestSecondInterruptKills)
		main()
	}
	goleak.VerifyTestMain(m)
}

// asCommandEnv makes the test binary run main() with its arguments.
const asCommandEnv = "TETHER_CLI_TEST_AS_COMMAND"

const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout) // wall time: a guard against hangs, never reached when tests pass
	t.Cleanup(cancel)
	return ctx
}

// runCLI runs the command in-process and returns its exit code and output.
func runCLI(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errOut bytes.Buffer
	code := run(testCtx(t), args, stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"no command", nil, "missing command"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"unknown flag", []string{"connect", "--nope", "ws://127.0.0.1:1/"}, "flag provided but not defined"},
		{"bad duration", []string{"connect", "--ping-interval", "soon", "ws://127.0.0.1:1/"}, "-ping-interval"},
		{"negative duration", []string{"connect", "--ping-interval", "-1s", "ws://127.0.0.1:1/"}, "negative"},
		{"timeout over interval", []string{"connect", "--ping-interval", "1s", "--pong-timeout", "2s", "ws://127.0.0.1:1/"}, "exceeds"},
		{"unknown jitter", []string{"connect", "--jitter", "wild", "ws://127.0.0.1:1/"}, "none, full, equal, decorrelated"},
		{"bad retry factor", []string{"connect", "--retry-factor", "0.5", "ws://127.0.0.1:1/"}, "factor"},
		{"bad retry base", []string{"connect", "--retry-base", "0s", "ws://127.0.0.1:1/"}, "base"},
		{"bad attempts", []string{"connect", "--retry-max-attempts", "-2", "ws://127.0.0.1:1/"}, "retry-max-attempts"},
		{"malformed header", []string{"connect", "--header", "no colon", "ws://127.0.0.1:1/"}, "Key: Value"},
		{"header name", []string{"connect", "--header", "Bad Name: x", "ws://127.0.0.1:1/"}, "not a token"},
		{"header handshake", []string{"connect", "--header", "Upgrade: h2c", "ws://127.0.0.1:1/"}, "handshake"},
		{"missing URL", []string{"connect"}, "missing URL"},
		{"two URLs", []string{"connect", "ws://a/", "ws://b/"}, "one URL"},
		{"bad scheme", []string{"connect", "ftp://127.0.0.1/"}, "bad URL"},
		{"no host", []string{"connect", "ws:///path"}, "bad URL"},
		{"unparsable URL", []string{"connect", "ws://[::1"}, "bad URL"},
		{"serve bad addr", []string{"serve", "--addr", "nowhere"}, "--addr"},
		{"serve bad port", []string{"serve", "--addr", "127.0.0.1:99999"}, "port"},
		{"serve bad path", []string{"serve", "--path", "ws"}, "--path"},
		// Paths ServeMux would read as patterns (some panic it) or as subtrees.
		{"serve path tab", []string{"serve", "--path", "/a\tb"}, "--path"},
		{"serve path open brace", []string{"serve", "--path", "/{"}, "--path"},
		{"serve path same wildcard twice", []string{"serve", "--path", "/{a}/{a}"}, "--path"},
		{"serve path rest wildcard mid-path", []string{"serve", "--path", "/x/{rest...}/y"}, "--path"},
		{"serve path wildcard", []string{"serve", "--path", "/{x}"}, "--path"},
		{"serve path subtree", []string{"serve", "--path", "/ws/"}, "--path"},
		{"serve path bad escape", []string{"serve", "--path", "/a%zz"}, "--path"},
		{"serve path short escape", []string{"serve", "--path", "/a%2"}, "--path"},
		{"serve path dot segment", []string{"serve", "--path", "/a/../b"}, "--path"},
		{"serve path space", []string{"serve", "--path", "/a b"}, "--path"},
		{"ping interval below 10ms", []string{"connect", "--ping-interval", "5ms", "ws://127.0.0.1:1/"}, "below 10ms"},
		{"pong timeout below 10ms", []string{"connect", "--ping-interval", "1s", "--pong-timeout", "1ms", "ws://127.0.0.1:1/"}, "below 10ms"},
		{"serve ping interval below 10ms", []string{"serve", "--ping-interval", "1ms"}, "below 10ms"},
		{"serve log format", []string{"serve", "--log-format", "xml"}, "text, json"},
		{"serve log level", []string{"serve", "--log-level", "loud"}, "debug, info"},
		{"serve extra arg", []string{"serve", "extra"}, "unexpected argument"},
		{"demo extra arg", []string{"demo", "now"}, "unexpected argument"},
		{"demo unknown flag", []string{"demo", "--fast"}, "flag provided but not defined"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, c.args...)
			if code != exitUsage {
				t.Fatalf("exit code %d, want %d; stderr %q", code, exitUsage, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("stderr %q is not one line", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not mention %q", stderr, c.want)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"connect", "-h"}, {"serve", "--help"}, {"demo", "-h"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != exitOK || !strings.Contains(stdout, "tether") || stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestFlagsAfterTheURL(t *testing.T) {
	// The URL is refused before any dial, so the flag after it must have been parsed to get there.
	code, _, stderr := runCLI(t, nil, "connect", "ftp://x/", "--jitter", "full")
	if code != exitUsage || !strings.Contains(stderr, "bad URL") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "connect", "ws://127.0.0.1:1/", "--jitter", "bogus")
	if code != exitUsage || !strings.Contains(stderr, "-jitter") {
		t.Fatalf("a bad flag after the URL: exit %d, stderr %q", code, stderr)
	}
}
