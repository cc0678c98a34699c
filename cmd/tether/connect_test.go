package main

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

type connectRun struct {
	stdin  *io.PipeWriter
	stdout *lines
	stderr *lines
	code   chan int
}

// startConnect runs tether connect with args, stdin a pipe the test writes.
func startConnect(t *testing.T, args ...string) *connectRun {
	t.Helper()
	pr, pw := io.Pipe()
	r := &connectRun{stdin: pw, stdout: newLines(), stderr: newLines(), code: make(chan int, 1)}
	ctx := testCtx(t)
	go func() { r.code <- run(ctx, append([]string{"connect"}, args...), pr, r.stdout, r.stderr) }()
	t.Cleanup(func() { _ = pw.Close(); _ = pr.Close() })
	return r
}

func (r *connectRun) exit(t *testing.T) int {
	t.Helper()
	select {
	case c := <-r.code:
		return c
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("connect did not exit")
		return -1
	}
}

func TestConnectSendsStdinAndPrintsMessages(t *testing.T) {
	addr, log, _ := startServe(t)
	r := startConnect(t, "ws://"+addr+"/ws", "--header", "X-Test: yes")
	r.stderr.await(t, "connected tether.1")
	if _, err := io.WriteString(r.stdin, "hello\nsecond line\n"); err != nil {
		t.Fatal(err)
	}
	if got := r.stdout.await(t, "hello"); got != "hello" {
		t.Fatalf("stdout line %q", got)
	}
	r.stdout.await(t, "second line")
	r.stdin.Close() // EOF: a normal close
	if code := r.exit(t); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	log.await(t, `"event":"tether.disconnected"`, `"code":1000`, `"remote":true`)
}

func TestConnectJSONLines(t *testing.T) {
	addr, _, _ := startServe(t)
	r := startConnect(t, "--json", "ws://"+addr+"/ws", "--ping-interval", "20ms", "--pong-timeout", "20ms", "--text-ping")
	var ev map[string]any
	line := r.stderr.await(t, `"event":"tether.connected"`)
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["conn"] != "tether.1" {
		t.Fatalf("event line %s: %v", line, err)
	}
	// wall time: connect runs on the real clock; the first text ping goes out after 20 ms.
	r.stderr.await(t, `"event":"tether.heartbeat.pong"`)
	io.WriteString(r.stdin, "pong me\n")
	line = r.stdout.await(t, "pong me")
	var msg map[string]any
	if err := json.Unmarshal([]byte(line), &msg); err != nil || msg["event"] != "message" || msg["op"] != "text" || msg["data"] != "pong me" {
		t.Fatalf("message line %s: %v", line, err)
	}
	r.stdin.Close()
	if code := r.exit(t); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// The server goes away for good: the client reconnects on its schedule,
// gives up, and exits non-zero with a clear message.
func TestConnectGivesUp(t *testing.T) {
	addr, _, stop := startServe(t)
	r := startConnect(t, "--json", "--retry-base", "10ms", "--retry-max-attempts", "2", "ws://"+addr+"/ws")
	r.stderr.await(t, `"event":"tether.connected"`)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// wall time: the retry waits 10 ms and 20 ms on the real clock.
	var delays []float64
	for range 2 {
		var ev map[string]any
		_ = json.Unmarshal([]byte(r.stderr.await(t, `"event":"tether.reconnect.scheduled"`)), &ev)
		delays = append(delays, ev["delay_ms"].(float64))
	}
	if delays[0] != 10 || delays[1] != 20 {
		t.Fatalf("delays %v ms, want [10 20]", delays)
	}
	r.stderr.await(t, `"event":"tether.reconnect.gaveup"`, `"attempts":2`)
	// --json: the final error is a JSON record too.
	line := r.stderr.await(t, `"event":"exit"`)
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["code"] != float64(exitFailure) || !strings.Contains(rec["err"].(string), "gave up reconnecting") {
		t.Fatalf("exit record %s (%v)", line, err)
	}
	if code := r.exit(t); code != exitFailure {
		t.Fatalf("exit %d, want %d (%s)", code, exitFailure, line)
	}
}

func TestConnectRefusedFirstDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	code, _, stderr := runCLI(t, strings.NewReader(""), "connect", "ws://"+addr+"/ws")
	if code != exitFailure || !strings.Contains(stderr, "connecting to ws://"+addr) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// wall time: with --retry-first-dial the refused dial is retried after 5 ms and 10 ms on the real clock.
	code, _, stderr = runCLI(t, strings.NewReader(""), "connect", "--json", "--retry-first-dial", "--retry-base", "5ms", "--retry-max-attempts", "2", "ws://"+addr+"/ws")
	if code != exitFailure || strings.Count(stderr, `"event":"tether.reconnect.attempt"`) != 2 || !strings.Contains(stderr, "gave up after 2 attempt(s)") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
