package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// --path is matched exactly, escapes included: nothing below it, nothing
// ServeMux would make of it.
func TestServePathExact(t *testing.T) {
	addr, log, _ := startServe(t, "--path", "/a%20b:c@d")
	c, _, _ := dialServe(t, "ws://"+addr+"/a%20b:c@d", nil)
	log.await(t, `"event":"tether.connected"`)
	_ = c.Close(ws.StatusNormalClosure, "")
	for _, p := range []string{"/a%20b:c@d/more", "/a%20b:c@", "/a%20b:c@d/"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
}

// A refused handshake (here a cross-origin browser, 403) is logged at
// Warn with the remote address, the origin and the error.
func TestServeLogsRefusedHandshake(t *testing.T) {
	addr, log, _ := startServe(t)
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, "http://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin handshake: %s, want 403", resp.Status)
	}
	line := log.await(t, `"msg":"handshake refused"`)
	for _, want := range []string{`"level":"WARN"`, `"origin":"http://evil.example"`, `"remote":"127.0.0.1:`, `"err":"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %s lacks %s", line, want)
		}
	}
}
