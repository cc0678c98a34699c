package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// lines is an io.Writer that hands each written line to a channel, for
// following a log as it is written.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	all bytes.Buffer // everything written
	ch  chan string
}

// String returns everything written so far.
func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func newLines() *lines { return &lines{ch: make(chan string, 4096)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf.Next(i + 1))
		l.ch <- strings.TrimSuffix(line, "\n")
	}
}

// await returns the first line that contains all of want.
func (l *lines) await(t *testing.T, want ...string) string {
	t.Helper()
	timeout := time.After(testTimeout) // wall time: hang guard only
	for {
		select {
		case line := <-l.ch:
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return line
			}
		case <-timeout:
			t.Fatalf("no line with %q", want)
			return ""
		}
	}
}

// startServe runs tether serve on a free loopback port with extra flags
// and returns its address, its log and a stop function that returns the
// command's error.
func startServe(t *testing.T, extra ...string) (string, *lines, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := newLines()
	addrCh := make(chan string, 1)
	errCh := make(chan error, 1)
	args := append([]string{"--addr", "127.0.0.1:0", "--log-format", "json"}, extra...)
	go func() { errCh <- serveWith(ctx, args, io.Discard, log, func(a string) { addrCh <- a }) }()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-errCh:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(testTimeout): // wall time: hang guard only
		cancel()
		t.Fatal("serve did not start")
	}
	stopped := false
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-errCh
		}
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return addr, log, stop
}

// pinger is a plugin for a test's own connection: it sends protocol pings
// (a plugin's operation, not a user's) and reports the pongs that come back.
type pinger struct {
	h     *core.Handle
	pongs chan []byte
}

func newPinger() *pinger { return &pinger{pongs: make(chan []byte, 4)} }

func (p *pinger) Attach(h *core.Handle) error {
	p.h = h
	return h.OnControl(func(op ws.OpCode, b []byte) {
		if op == ws.OpPong {
			p.pongs <- bytes.Clone(b)
		}
	})
}

type received struct {
	op ws.OpCode
	p  string
}

// dialServe opens a raw tether connection to serve's endpoint, serving it
// in the background; messages arrive on the returned channel. pg, if not
// nil, attaches to the connection.
func dialServe(t *testing.T, url string, pg *pinger) (*core.Conn, <-chan received, <-chan error) {
	t.Helper()
	msgs := make(chan received, 16)
	cfg := core.Config{Handler: func(_ context.Context, f core.Frame) error {
		msgs <- received{f.Op, string(f.Payload)}
		return nil
	}}
	if pg != nil {
		cfg.Plugins = []core.Plugin{pg}
	}
	c, err := core.Dial(testCtx(t), url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- c.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = c.Close(ws.StatusNormalClosure, "")
		select {
		case <-c.Done(): // the peer answered, or the close timeout (5 s) passed
		case <-time.After(testTimeout): // wall time: hang guard only
			t.Error("the test's connection did not end")
		}
	})
	return c, msgs, served
}

func next(t *testing.T, msgs <-chan received) received {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("no message")
		return received{}
	}
}

func TestServeAnswersPingsEchoesAndCloses(t *testing.T) {
	addr, log, stop := startServe(t, "--path", "/live")
	url := "ws://" + addr + "/live"
	pg := newPinger()
	c, msgs, served := dialServe(t, url, pg)
	ctx := testCtx(t)
	log.await(t, `"event":"tether.connected"`)

	// The recipe's text heartbeat.
	if err := c.WriteText(ctx, "ping"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, msgs); m != (received{ws.OpText, "pong"}) {
		t.Fatalf("answer to ping: %+v", m)
	}
	// A protocol ping, answered with its payload.
	if err := pg.h.Ping(ctx, []byte("p1")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-pg.pongs:
		if string(p) != "p1" {
			t.Fatalf("pong payload %q", p)
		}
	case <-time.After(testTimeout): // wall time: hang guard only
		t.Fatal("no pong")
	}
	// Echo, text and binary.
	for _, m := range []received{{ws.OpText, "hello"}, {ws.OpBinary, "\x00\x01\xff"}, {ws.OpText, "pong"}} {
		if err := c.Write(ctx, m.op, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		if got := next(t, msgs); got != m {
			t.Fatalf("echo of %+v: %+v", m, got)
		}
	}
	// An invalid close command is answered, not obeyed.
	if err := c.WriteText(ctx, "/close 1005 nope"); err != nil {
		t.Fatal(err)
	}
	if got := next(t, msgs); !strings.HasPrefix(got.p, "error:") {
		t.Fatalf("answer to a bad close command: %+v", got)
	}
	// The server closes with the code asked for.
	if err := c.WriteText(ctx, "/close 4001 as asked"); err != nil {
		t.Fatal(err)
	}
	var ce *core.CloseError
	if err := <-served; !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "as asked" || !ce.Remote {
		t.Fatalf("close: %v", err)
	}
	line := log.await(t, `"event":"tether.disconnected"`)
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["code"] != float64(4001) {
		t.Fatalf("server log %s (%v)", line, err)
	}

	// A client's close code reaches the server.
	c2, _, served2 := dialServe(t, url, nil)
	if err := c2.Close(4002, "client says bye"); err != nil {
		t.Fatal(err)
	}
	<-served2
	line = log.await(t, `"event":"tether.disconnected"`, `"remote":true`)
	if !strings.Contains(line, `"code":4002`) || !strings.Contains(line, "client says bye") {
		t.Fatalf("server log %s", line)
	}

	// Shutdown closes live connections with 1001.
	_, _, served3 := dialServe(t, url, nil)
	log.await(t, `"event":"tether.connected"`)
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := <-served3; core.CloseStatus(err) != ws.StatusGoingAway {
		t.Fatalf("at shutdown: %v", err)
	}
}

func TestServePage(t *testing.T) {
	addr, _, _ := startServe(t, "--path", "/sock")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !bytes.Contains(body, []byte(`const WS_PATH = "/sock";`)) || bytes.Contains(body, []byte("__TETHER_WS_PATH__")) {
		t.Fatal("the page does not carry the endpoint's path")
	}
	resp, err = http.Get("http://" + addr + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /other: %s", resp.Status)
	}
}

// A client that completes the handshake and then never reads (so never
// answers a ping) is dropped by the server's heartbeat.
func TestServeDropsSilentClients(t *testing.T) {
	addr, log, _ := startServe(t, "--ping-interval", "50ms", "--pong-timeout", "50ms")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	u, _ := core.ParseURL("ws://" + addr + "/ws")
	if _, _, err := (ws.Dialer{}).Upgrade(nc, u); err != nil {
		t.Fatal(err)
	}
	// wall time: serve runs on the real clock; detection takes about 100 ms here.
	log.await(t, `"event":"tether.heartbeat.timeout"`)
	log.await(t, `"event":"tether.disconnected"`, `"code":1006`)
}
