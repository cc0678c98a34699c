package core_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/internal/memconn"
)

// TestHandshakeParsingPolicy sends the same raw requests to Upgrader.Accept
// (parsed by gobwas/ws) and to Upgrader.Upgrade (parsed by net/http) and
// checks that both answer them alike: a bare LF ends a header line (RFC
// 9112 2.2 lets a recipient accept it, and net/http does, before tether
// sees the request); an empty Origin counts as absent; every Origin line
// must pass the check; more than one Host is a 400. The last rows pin
// where the two parsers still differ, on requests no browser sends (see
// docs/security.md).
func TestHandshakeParsingPolicy(t *testing.T) {
	lines := []string{"GET /ws HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"}
	req := func(eol string, extra ...string) string {
		return strings.Join(append(append([]string{}, lines...), extra...), eol) + eol + eol
	}
	const same, cross = "Origin: http://example.com", "Origin: https://evil.example"
	for _, tc := range []struct {
		name            string
		req             string
		accept, upgrade int
	}{
		{"CRLF", req("\r\n"), 101, 101},
		{"CRLF same origin", req("\r\n", same), 101, 101},
		{"CRLF cross origin", req("\r\n", cross), 403, 403},
		{"CRLF null origin", req("\r\n", "Origin: null"), 403, 403},
		{"CRLF empty origin", req("\r\n", "Origin:"), 101, 101},
		{"CRLF blank origin", req("\r\n", "Origin: \t "), 101, 101},
		{"LF", req("\n"), 101, 101},
		{"LF same origin", req("\n", same), 101, 101},
		{"LF cross origin", req("\n", cross), 403, 403},
		{"LF empty origin", req("\n", "Origin:"), 101, 101},
		// issue 20's mix (its request target aside, see below)
		{"CRLF and LF, empty origin", strings.Replace(req("\n", "Origin:"), "HTTP/1.1\n", "HTTP/1.1\r\n", 1), 101, 101},
		{"two origins, same then cross", req("\r\n", same, cross), 403, 403},
		{"two origins, cross then same", req("\r\n", cross, same), 403, 403},
		{"two origins, empty then cross", req("\r\n", "Origin:", cross), 403, 403},
		{"two origins, cross then empty", req("\r\n", cross, "Origin:"), 403, 403},
		{"two origins, both same", req("\r\n", same, same), 101, 101},
		{"two hosts", req("\r\n", "Host: evil.example", "Origin: https://evil.example"), 400, 400},

		// Where the parsers differ. gobwas reads an obs-fold line as a
		// header of its own (net/http joins it to the previous one),
		// ignores the host of an absolute-form target (net/http takes it,
		// as RFC 9112 3.2.2 says), keeps a bare CR inside a value (net/http
		// refuses it) and takes an empty request target.
		{"obs-fold origin", req("\r\n", "Origin:", " https://evil.example"), 101, 403},
		{"absolute-form target", strings.Replace(req("\r\n", cross), "GET /ws", "GET https://evil.example/ws", 1), 403, 101},
		{"bare CR in a line", req("\r\n", "X: a\r"+cross), 101, 400},
		{"empty request target", strings.Replace(req("\r\n"), "GET /ws", "GET ", 1), 101, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, err := acceptRaw(t, tc.req)
			checkAnswer(t, "Accept", status, err, tc.accept)
			status, err = upgradeRaw(t, tc.req)
			checkAnswer(t, "Upgrade", status, err, tc.upgrade)
		})
	}
}

func checkAnswer(t *testing.T, path string, status int, err error, want int) {
	t.Helper()
	switch {
	case status != want:
		t.Errorf("%s answered %d (%v), want %d", path, status, err, want)
	case want == http.StatusSwitchingProtocols && err != nil:
		t.Errorf("%s answered 101 but failed: %v", path, err)
	case want == http.StatusForbidden && !errors.Is(err, core.ErrOriginNotAllowed):
		t.Errorf("%s answered 403 with %v, want ErrOriginNotAllowed", path, err)
	}
}

// bytesConn reads a fixed request and records the answer.
type bytesConn struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (s *bytesConn) Read(p []byte) (int, error)       { return s.r.Read(p) }
func (s *bytesConn) Write(p []byte) (int, error)      { return s.w.Write(p) }
func (s *bytesConn) Close() error                     { return nil }
func (s *bytesConn) LocalAddr() net.Addr              { return memconn.Addr{} }
func (s *bytesConn) RemoteAddr() net.Addr             { return memconn.Addr{} }
func (s *bytesConn) SetDeadline(time.Time) error      { return nil }
func (s *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (s *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// acceptRaw sends req to Upgrader.Accept and returns the HTTP status it
// answered with and Accept's error.
func acceptRaw(t *testing.T, req string) (int, error) {
	t.Helper()
	nc := &bytesConn{r: bytes.NewReader([]byte(req))}
	c, err := (&core.Upgrader{Config: core.Config{Clock: clockwork.NewFakeClock()}}).Accept(nc)
	if err == nil {
		_ = c.Serve(context.Background()) // ends at the end of the input
	}
	resp, rerr := http.ReadResponse(bufio.NewReader(&nc.w), nil)
	if rerr != nil {
		t.Fatalf("Accept (%v) answered %q: %v", err, nc.w.Bytes(), rerr)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, err
}

// upgradeRaw sends req to an http.Server whose handler calls
// Upgrader.Upgrade and returns the HTTP status it answered with and
// Upgrade's error (nil if net/http refused the request itself).
func upgradeRaw(t *testing.T, req string) (int, error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		upErr error
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		c, err := (&core.Upgrader{}).Upgrade(w, r)
		upErr = err
		if err == nil {
			_ = c.Serve(r.Context()) // ends when the client closes
		}
	}))
	defer srv.Close()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(testTimeout)) // wall time: hang guard only
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = nc.(*net.TCPConn).CloseWrite() // the end of the request: a server waiting for more fails
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	_ = resp.Body.Close()
	_ = nc.Close()
	// The handler, if it ran, started before it answered; it ends once
	// Serve sees the closed connection.
	wg.Wait()
	return resp.StatusCode, upErr
}
