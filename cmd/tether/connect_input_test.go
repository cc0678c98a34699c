package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// Secrets in the URL (password, query values) never reach stdout or
// stderr, whichever way connect ends: a bad URL, a refused first dial, a
// connection ended by a close code that is not retried, a give-up.
func TestConnectRedactsURLSecrets(t *testing.T) {
	const user = "user:s3cret@"
	const query = "?token=SECRET&SECRETKEY"
	noSecret := func(t *testing.T, what, out string) {
		t.Helper()
		for _, s := range []string{"s3cret", "SECRET"} {
			if strings.Contains(out, s) {
				t.Errorf("%s leaks %q: %s", what, s, out)
			}
		}
	}
	// A bad URL (usage error) and a refused dial, text and JSON.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nobody listens there now
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"connect", "ftp://" + user + "127.0.0.1:1/ws" + query}, exitUsage, "bad URL"},
		{[]string{"connect", "--json", "ws://" + user + "127.0.0.1:1/ws\x7f" + query}, exitUsage, "bad URL"},
		{[]string{"connect", "ws://" + user + closed + "/ws" + query}, exitFailure, "connecting to ws://user:REDACTED@"},
		{[]string{"connect", "--json", "ws://" + user + closed + "/ws" + query}, exitFailure, "connecting to ws://user:REDACTED@"},
	} {
		code, stdout, stderr := runCLI(t, nil, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q", c.args, code, stderr)
		}
		noSecret(t, "stdout", stdout)
		noSecret(t, "stderr", stderr)
	}

	// A close code that is never retried ends the session at once.
	addr, _, stop := startServe(t)
	r := startConnect(t, "ws://"+user+addr+"/ws"+query)
	r.stderr.await(t, "connected tether.1")
	io.WriteString(r.stdin, "/close 1008 go away\n")
	line := r.stderr.await(t, "tether connect:")
	if code := r.exit(t); code != exitFailure || !strings.Contains(line, "ws://user:REDACTED@") {
		t.Errorf("exit %d, %s", code, line)
	}
	// The nit: "gave up after 0 attempt(s)" said nothing true.
	if !strings.Contains(line, "not retried") || strings.Contains(line, "0 attempt") {
		t.Errorf("a close code that is never retried: %s", line)
	}
	noSecret(t, "stderr", r.stderr.String())
	noSecret(t, "stdout", r.stdout.String())

	// A give-up after the server went away.
	r = startConnect(t, "--retry-base", "10ms", "--retry-max-attempts", "1", "ws://"+user+addr+"/ws"+query)
	r.stderr.await(t, "connected tether.1")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// wall time: one reconnect attempt after 10 ms on the real clock.
	line = r.stderr.await(t, "tether connect: gave up reconnecting to ws://user:REDACTED@")
	if code := r.exit(t); code != exitFailure {
		t.Errorf("exit %d, %s", code, line)
	}
	noSecret(t, "stderr", r.stderr.String())
}

// neverReads accepts one WebSocket handshake and then never reads again,
// so that the client's writes block once the socket buffers are full. The
// returned function closes the listener and the connection.
func neverReads(t *testing.T) (addr string, closeAll func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(conns)
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // small: the client blocks sooner
		}
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err == nil {
			h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
				base64.StdEncoding.EncodeToString(h[:])+"\r\n\r\n")
		}
		conns <- c
	}()
	return ln.Addr().String(), func() {
		ln.Close()
		if c, ok := <-conns; ok {
			c.Close()
		}
	}
}

// feedUntilBlocked writes 64 KiB lines to w until the writes stop going
// through (the reader of w no longer consumes: connect's send is blocked
// behind a peer that does not read), and returns. The writer goroutine
// goes on until w is closed.
func feedUntilBlocked(t *testing.T, w io.Writer) {
	t.Helper()
	var written atomic.Int64
	go func() {
		line := strings.Repeat("x", 64<<10) + "\n"
		for i := 0; i < 4096; i++ { // 256 MiB: far beyond any socket buffer
			if _, err := io.WriteString(w, line); err != nil {
				return
			}
			written.Add(int64(len(line)))
		}
	}()
	deadline := time.Now().Add(testTimeout)
	last := int64(-1)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // wall time: the socket fills on the real network stack; no progress in 200 ms means blocked
		n := written.Load()
		if n == last && n > 0 {
			return
		}
		last = n
	}
	t.Fatal("stdin kept flowing: the peer's socket never filled")
}

// A peer completes the handshake and never reads: once a send blocks, an
// interrupt must still end connect (within the close timeout).
func TestConnectInterruptWhileSendBlocked(t *testing.T) {
	addr, closeAll := neverReads(t)
	defer closeAll()
	pr, pw := io.Pipe()
	defer pr.Close()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLines()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"connect", "--ping-interval", "0", "--close-timeout", "100ms", "--retry-max-attempts", "0", "ws://" + addr + "/"}, pr, io.Discard, stderr)
	}()
	stderr.await(t, "connected tether.1")
	feedUntilBlocked(t, pw)
	cancel()
	select {
	case c := <-code:
		if c != exitOK {
			t.Errorf("exit %d after an interrupt, want 0: %s", c, stderr.String())
		}
		if !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("stderr does not say it was interrupted: %s", stderr.String())
		}
	case <-time.After(5 * time.Second): // wall time: the close timeout is 100 ms; 5 s means the interrupt was ignored
		t.Error("connect ignored the interrupt for 5 s while a send was blocked")
		closeAll() // unblock so the test can end
		<-code
	}
}

// A line that is not valid UTF-8 is refused (the server would close with
// 1007 and end the session); the lines after it still go out, and the
// command exits 1 at the end, with the reason as a JSON record.
func TestConnectRefusesInvalidUTF8(t *testing.T) {
	addr, _, _ := startServe(t)
	r := startConnect(t, "--json", "ws://"+addr+"/ws")
	r.stderr.await(t, `"event":"tether.connected"`)
	io.WriteString(r.stdin, "first\nbad \xff byte\nlast\n")
	r.stdout.await(t, `"data":"first"`)
	line := r.stderr.await(t, `"event":"send.refused"`)
	if !strings.Contains(line, "UTF-8") {
		t.Errorf("refusal %s", line)
	}
	r.stdout.await(t, `"data":"last"`) // the session went on
	r.stdin.Close()
	exit := r.stderr.await(t, `"event":"exit"`)
	var rec map[string]any
	if err := json.Unmarshal([]byte(exit), &rec); err != nil || rec["code"] != float64(exitFailure) || !strings.Contains(rec["err"].(string), "1 line(s)") {
		t.Errorf("exit record %s (%v)", exit, err)
	}
	if code := r.exit(t); code != exitFailure {
		t.Fatalf("exit %d, want %d", code, exitFailure)
	}
	if strings.Contains(r.stderr.String(), "tether.reconnect") || strings.Contains(r.stderr.String(), "1007") {
		t.Errorf("the session was disturbed: %s", r.stderr.String())
	}
}

// A line longer than the scanner's limit ends the input with an error
// message and exit 1, not silently with 0.
func TestConnectLineTooLong(t *testing.T) {
	addr, _, _ := startServe(t)
	in := "short\n" + strings.Repeat("x", maxLine+1) + "\nnever read\n"
	code, stdout, stderr := runCLI(t, strings.NewReader(in), "connect", "ws://"+addr+"/ws")
	if code != exitFailure || !strings.Contains(stderr, "longer than") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stdout, "never read") {
		t.Errorf("stdout %q", stdout)
	}
}

// A line refused because the send buffer is full (while reconnecting) is
// reported, and the command exits 1 even though the session went on.
func TestConnectBufferFullExitsOne(t *testing.T) {
	addr, _, stop := startServe(t)
	r := startConnect(t, "--send-buffer", "1", "--retry-base", "20ms", "--retry-max-delay", "20ms", "--retry-max-attempts", "-1", "ws://"+addr+"/ws")
	r.stderr.await(t, "connected tether.1")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r.stderr.await(t, "reconnect #1")
	io.WriteString(r.stdin, "queued\nrefused\n")
	r.stderr.await(t, "line not sent")
	startServe(t, "--addr", addr) // the server is back, on the same port
	// wall time: the client retries every 20 ms on the real clock.
	r.stderr.await(t, "reconnected tether.")
	r.stdout.await(t, "queued")
	r.stdin.Close()
	line := r.stderr.await(t, "tether connect:")
	if code := r.exit(t); code != exitFailure || !strings.Contains(line, "1 line(s)") {
		t.Fatalf("exit %d, %s", code, line)
	}
}

// Text mode prints each received message on one line: one holding control
// characters (or starting with a quote) is Go-quoted.
func TestPrintMessageOneLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, ünïcode", "plain text, ünïcode"},
		{"line 1\nline 2", `"line 1\nline 2"`},
		{"bell\a and \x1b[31mred", `"bell\a and \x1b[31mred"`},
		{`"quoted"`, `"\"quoted\""`},
		{"", ""},
	} {
		l := newLines()
		printMessage(&lineWriter{w: l}, core.Frame{Op: ws.OpText, Payload: []byte(c.in)})
		if got := l.String(); got != c.want+"\n" {
			t.Errorf("%q printed as %q, want %q", c.in, got, c.want+"\n")
		}
	}
	// End to end: a tab comes back from the echo server quoted.
	addr, _, _ := startServe(t)
	r := startConnect(t, "ws://"+addr+"/ws")
	r.stderr.await(t, "connected tether.1")
	io.WriteString(r.stdin, "a\tb\n")
	if got := r.stdout.await(t, "a"); got != `"a\tb"` {
		t.Errorf("stdout %q", got)
	}
	r.stdin.Close()
	r.exit(t)
	// And -h says so.
	_, stdout, _ := runCLI(t, nil, "connect", "-h")
	if !strings.Contains(stdout, "Go-quoted") {
		t.Errorf("connect -h does not explain the quoting: %s", stdout)
	}
}

// stdin ends while the client waits to reconnect, with a line queued: the
// close cuts the wait short, the command says the line was never sent and
// exits 1 (Client.Shutdown reports it; Close no longer waits).
func TestConnectEOFWhileReconnecting(t *testing.T) {
	addr, _, stop := startServe(t)
	r := startConnect(t, "--retry-base", "1m", "--retry-max-delay", "1m", "ws://"+addr+"/ws")
	r.stderr.await(t, "connected tether.1")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r.stderr.await(t, "reconnect #1 in 1m0s")
	io.WriteString(r.stdin, "queued\n") // sent (queued) before the EOF is seen
	r.stdin.Close()
	line := r.stderr.await(t, "tether connect:")
	if code := r.exit(t); code != exitFailure || !strings.Contains(line, "stdin closed while reconnecting: 1 message(s) never sent") {
		t.Fatalf("exit %d, %s", code, line)
	}
}
