package core_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
)

// A refused handshake keeps its HTTP status and headers, so that a 401 can
// be told from a 503 (and its Retry-After read).
func TestHandshakeRefusalKeepsStatus(t *testing.T) {
	for _, tc := range []struct {
		status    int
		temporary bool
	}{{http.StatusUnauthorized, false}, {http.StatusForbidden, false}, {http.StatusServiceUnavailable, true}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "no", tc.status)
		}))
		_, err := core.Dial(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http"), core.Config{})
		srv.Close()
		var he *core.HandshakeError
		if !errors.As(err, &he) {
			t.Fatalf("status %d: %v is not a *HandshakeError", tc.status, err)
		}
		if he.StatusCode != tc.status || he.Temporary() != tc.temporary || he.Header.Get("Retry-After") != "7" {
			t.Fatalf("got %+v, want status %d temporary %v with Retry-After", he, tc.status, tc.temporary)
		}
	}
}

// Headers and subprotocols travel with the handshake; the server picks the
// first subprotocol the client offers that it speaks.
func TestHeadersAndSubprotocol(t *testing.T) {
	gotAuth := make(chan string, 1)
	up := &core.Upgrader{Protocols: []string{"v2", "v1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth <- r.Header.Get("Authorization")
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		_ = c.Serve(r.Context())
	}))
	defer srv.Close()
	d := &core.Dialer{Header: http.Header{"Authorization": {"Bearer t0k3n"}}, Protocols: []string{"v1", "v2"}}
	c, err := d.Dial(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	done := served(c)
	if a := <-gotAuth; a != "Bearer t0k3n" {
		t.Fatalf("server saw Authorization %q", a)
	}
	if c.Subprotocol() != "v1" {
		t.Fatalf("subprotocol %q, want v1 (the client's first choice that the server speaks)", c.Subprotocol())
	}
	_ = c.Close(ws.StatusNormalClosure, "")
	waitErr(t, done)
}

// wss:// verifies the server's certificate by default; a TLSConfig that
// trusts the test CA connects.
func TestTLSVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&core.Upgrader{}).Upgrade(w, r)
		if err != nil {
			return
		}
		_ = c.Serve(r.Context())
	}))
	defer srv.Close()
	wss := "wss" + strings.TrimPrefix(srv.URL, "https")

	_, err := core.Dial(testCtx(t), wss, core.Config{})
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Fatalf("default TLS accepted a self-signed server: %v", err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := (&core.Dialer{TLSConfig: &tls.Config{RootCAs: pool}}).Dial(testCtx(t), wss)
	if err != nil {
		t.Fatalf("trusted CA: %v", err)
	}
	done := served(c)
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	waitErr(t, done)
}

// Same-origin by default; a cross-site browser request gets 403 on both
// server paths; AllowAnyOrigin opts out.
func TestOriginCheck(t *testing.T) {
	dialWithOrigin := func(url, origin string) error {
		d := &core.Dialer{Header: http.Header{"Origin": {origin}}}
		c, err := d.Dial(testCtx(t), url)
		if err == nil {
			done := served(c)
			_ = c.Close(ws.StatusNormalClosure, "")
			waitErr(t, done)
		}
		return err
	}
	for _, tc := range []struct {
		name      string
		check     func(string, string) bool
		origin    string
		wantAllow bool
	}{
		{"same origin", nil, "", true},
		{"cross origin", nil, "https://evil.example", false},
		{"any origin allowed", core.AllowAnyOrigin, "https://evil.example", true},
	} {
		t.Run(tc.name+"/http", func(t *testing.T) {
			up := &core.Upgrader{CheckOrigin: tc.check}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := up.Upgrade(w, r)
				if err != nil {
					return
				}
				_ = c.Serve(r.Context())
			}))
			defer srv.Close()
			origin := tc.origin
			if origin == "" {
				origin = srv.URL // same origin
			}
			err := dialWithOrigin("ws"+strings.TrimPrefix(srv.URL, "http"), origin)
			var he *core.HandshakeError
			if tc.wantAllow && err != nil || !tc.wantAllow && (!errors.As(err, &he) || he.StatusCode != http.StatusForbidden) {
				t.Fatalf("origin %q: %v", origin, err)
			}
		})
		t.Run(tc.name+"/raw", func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			acceptErr := make(chan error, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					acceptErr <- err
					return
				}
				c, err := (&core.Upgrader{CheckOrigin: tc.check}).Accept(nc)
				if err == nil {
					err = c.Serve(context.Background())
					if core.CloseStatus(err) == ws.StatusNormalClosure {
						err = nil
					}
				}
				acceptErr <- err
			}()
			origin := tc.origin
			if origin == "" {
				origin = "http://" + ln.Addr().String()
			}
			err = dialWithOrigin("ws://"+ln.Addr().String()+"/", origin)
			aerr := waitErr(t, acceptErr)
			if tc.wantAllow {
				if err != nil || aerr != nil {
					t.Fatalf("dial %v, accept %v", err, aerr)
				}
				return
			}
			var he *core.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || !errors.Is(aerr, core.ErrOriginNotAllowed) {
				t.Fatalf("dial %v, accept %v; want 403 and ErrOriginNotAllowed", err, aerr)
			}
		})
	}
}

// A server that sends a masked frame violates RFC 6455: the client closes
// with 1002.
func TestClientRejectsMaskedServerFrame(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerGot := make(chan ws.StatusCode, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		_ = ws.WriteFrame(nc, ws.MaskFrame(ws.NewTextFrame([]byte("masked"))))
		for {
			f, err := ws.ReadFrame(nc)
			if err != nil {
				peerGot <- 0
				return
			}
			if f.Header.OpCode == ws.OpClose {
				code, _ := ws.ParseCloseFrameData(ws.UnmaskFrameInPlace(f).Payload)
				peerGot <- code
				return
			}
		}
	}()
	c, err := core.Dial(testCtx(t), "ws://"+ln.Addr().String()+"/", core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = waitErr(t, served(c))
	if !errors.Is(err, core.ErrProtocol) || core.CloseStatus(err) != ws.StatusProtocolError {
		t.Fatalf("client cause %v, want 1002 ErrProtocol", err)
	}
	if code := <-peerGot; code != ws.StatusProtocolError {
		t.Fatalf("peer got close code %d", code)
	}
}
