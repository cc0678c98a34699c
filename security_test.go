package tether_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/middleware"
	"github.com/tetherws/tether/retry"
)

// testCA is a certificate authority made for one test, and leaf
// certificates it signs.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tether test CA"},
		NotBefore:             time.Now().Add(-time.Hour), // wall time: certificates are checked against the real clock
		NotAfter:              time.Now().Add(time.Hour),  // wall time: idem
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf returns a server certificate for the given names (IP addresses or
// DNS names), signed by ca.
func (ca *testCA) leaf(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour), // wall time: certificates are checked against the real clock
		NotAfter:     time.Now().Add(time.Hour),  // wall time: idem
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsEcho starts a wss:// echo server on loopback with cert, and counts the
// TCP connections it got (each a TLS handshake attempt).
func tlsEcho(t *testing.T, cert tls.Certificate) (url string, conns *atomic.Int32) {
	t.Helper()
	h, err := tether.NewServer(tether.WithHandler(func(ctx context.Context, f core.Frame) error {
		return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
	}))
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = slogDiscard() // the refused handshakes' "TLS handshake error" lines
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return "wss" + strings.TrimPrefix(srv.URL, "https") + "/ws", conns
}

func slogDiscard() *log.Logger { return log.New(io.Discard, "", 0) }

// wss:// against a local TLS server whose certificate a test CA signed:
// accepted with the CA in RootCAs; refused with the system roots (the
// default) and on a hostname mismatch; and neither refusal is retried,
// even with WithRetryFirstDial, because the next attempt would fail the
// same way.
func TestClientTLSWithTestCA(t *testing.T) {
	ca := newTestCA(t)
	good, _ := tlsEcho(t, ca.leaf(t, "127.0.0.1", "localhost"))

	t.Run("CA trusted", func(t *testing.T) {
		in := make(chan string, 1)
		c, err := tether.Dial(testCtx(t), good,
			tether.WithTLSConfig(&tls.Config{RootCAs: ca.pool}),
			tether.WithHandler(func(_ context.Context, f core.Frame) error { in <- string(f.Payload); return nil }))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ws.StatusNormalClosure, "")
		if err := c.SendText(testCtx(t), "over TLS"); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-in:
			if got != "over TLS" {
				t.Fatalf("echo %q", got)
			}
		case <-testCtx(t).Done():
			t.Fatal("no echo")
		}
	})

	refused := []struct {
		name  string
		url   func(t *testing.T) (string, *atomic.Int32)
		roots *x509.CertPool
		check func(error) bool
	}{
		{"unknown CA (system roots)", func(t *testing.T) (string, *atomic.Int32) { return tlsEcho(t, ca.leaf(t, "127.0.0.1")) }, nil,
			func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }},
		{"hostname mismatch", func(t *testing.T) (string, *atomic.Int32) { return tlsEcho(t, ca.leaf(t, "other.example")) }, ca.pool,
			func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			url, conns := tc.url(t)
			clock := clockwork.NewFakeClock()
			bus := events.NewBus()
			defer bus.Close()
			var scheduled atomic.Int32
			if _, err := events.Subscribe(bus, func(retry.Scheduled) { scheduled.Add(1) }); err != nil {
				t.Fatal(err)
			}
			opts := []tether.DialOption{tether.WithClock(clock), tether.WithBus(bus), tether.WithRetryFirstDial()}
			if tc.roots != nil {
				opts = append(opts, tether.WithTLSConfig(&tls.Config{RootCAs: tc.roots}))
			}
			// Were the error retried, Dial would wait on the fake clock,
			// which nobody advances: the hang guard would fail the test.
			_, err := tether.Dial(testCtx(t), url, opts...)
			if err == nil || !tc.check(err) {
				t.Fatalf("Dial = %v", err)
			}
			if tether.Retryable(err) {
				t.Fatalf("Retryable(%v) = true", err)
			}
			_ = bus.Wait(testCtx(t))
			if n, s := conns.Load(), scheduled.Load(); n != 1 || s != 0 {
				t.Fatalf("%d TLS connections, %d reconnects scheduled; want 1 and 0", n, s)
			}
		})
	}
}

// Cross-site WebSocket hijacking: a page on another site makes the
// visitor's browser open a WebSocket to the server, with the visitor's
// cookies and the page's Origin. tether.NewServer refuses it with 403 by
// default, before any handler runs; same-origin pages and non-browser
// clients (no Origin) connect. core.AllowAnyOrigin is the explicit opt-out.
func TestCrossSiteHijackingRefused(t *testing.T) {
	var handled atomic.Int32
	h, err := tether.NewServer(tether.WithHandler(func(context.Context, core.Frame) error { handled.Add(1); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	optOut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&core.Upgrader{CheckOrigin: core.AllowAnyOrigin}).Upgrade(w, r)
		if err == nil {
			_ = c.Serve(r.Context())
		}
	}))
	defer optOut.Close()

	for _, tc := range []struct {
		origin string
		allow  bool
	}{
		{"", true}, // not a browser: no Origin, nothing to hijack
		{"http://" + host, true},
		{"https://" + host, true}, // the check compares hosts, as gorilla/websocket does
		{"HTTP://" + strings.ToUpper(host), true},
		{"https://evil.example", false},
		{"null", false}, // sandboxed iframes, file: pages
		{"http://127.0.0.1", false},
		{"http://" + host + ".evil.example", false},
		{"http://" + host + "@evil.example", false},
		{"http://evil.example/" + host, false},
		{"http://[::1", false}, // does not parse
	} {
		t.Run(fmt.Sprintf("%q", tc.origin), func(t *testing.T) {
			hdr := http.Header{"Cookie": {"session=visitor"}}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			for _, s := range []*httptest.Server{srv, optOut} {
				d := &core.Dialer{Header: hdr}
				c, err := d.Dial(testCtx(t), "ws"+strings.TrimPrefix(s.URL, "http"))
				allow := tc.allow || s == optOut
				if allow {
					if err != nil {
						t.Fatalf("%s: refused: %v", s.URL, err)
					}
					_ = c.Close(ws.StatusNormalClosure, "")
					continue
				}
				var he *core.HandshakeError
				if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
					if c != nil {
						_ = c.Close(ws.StatusNormalClosure, "")
					}
					t.Fatalf("Origin %q: %v, want HTTP 403", tc.origin, err)
				}
			}
		})
	}
	if n := handled.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// The server's defaults bound what a client can send: a message over 16 MiB
// is refused with 1009 on a tether.NewServer built with no option, as soon as
// its header arrives.
func TestHandlerDefaultMessageLimit(t *testing.T) {
	h, err := tether.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	u, _ := neturl(srv.URL)
	br, _, err := ws.Dialer{}.Upgrade(nc, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteHeader(nc, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: core.DefaultMaxMessageSize + 1, Masked: true}); err != nil {
		t.Fatal(err)
	}
	var r io.Reader = nc
	if br != nil {
		r = br
	}
	f, err := ws.ReadFrame(r)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); f.Header.OpCode != ws.OpClose || code != ws.StatusMessageTooBig {
		t.Fatalf("got %v code %d, want close 1009", f.Header.OpCode, code)
	}
}

func neturl(s string) (*url.URL, error) { return url.Parse("ws" + strings.TrimPrefix(s, "http")) }

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logAllEvents logs every event published on bus with l, in full.
func logAllEvents(t *testing.T, bus *events.Bus, l *slog.Logger) {
	t.Helper()
	if _, err := events.SubscribeAll(bus, func(e events.Event) {
		l.Info("event", "topic", e.Topic(), "payload", fmt.Sprintf("%+v", e), "go", fmt.Sprintf("%#v", e))
	}); err != nil {
		t.Fatal(err)
	}
}

// Secrets in the URL's query, the userinfo password and the Authorization,
// Cookie and Sec-WebSocket-Protocol headers never reach what tether logs
// or publishes: every event of a client's life (connect, messages through
// the Logging middleware, a lost server, a failed reconnect that quotes
// the URL, give-up) and every error Dial returns (refused handshake, bad
// URL, handshake timeout, connection refused) are captured in one slog
// JSON stream, which is then searched for the secrets.
func TestSecretsNeverLogged(t *testing.T) {
	const (
		querySecret  = "QUERYSECRET123"
		passSecret   = "PASSSECRET456"
		bearerSecret = "BEARERSECRET789"
		cookieSecret = "COOKIESECRET000"
		protoSecret  = "PROTOSECRET111"
	)
	var out syncBuffer
	logger := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logErr := func(what string, err error) {
		if err != nil {
			logger.Warn(what, "err", err, "text", fmt.Sprintf("%+v", err))
		}
	}

	s := newSim(t)
	logAllEvents(t, s.bus, logger)
	b := newBackend(t)
	secretURL := func(base string) string {
		return strings.Replace(base, "ws://", "ws://user:"+passSecret+"@", 1) + "?token=" + querySecret + "&room=1"
	}
	header := http.Header{
		"Authorization": {"Bearer " + bearerSecret},
		"Cookie":        {"sid=" + cookieSecret},
	}
	policy, err := retry.New(retry.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tether.Dial(testCtx(t), secretURL(b.url()),
		tether.WithClock(s.clock), tether.WithBus(s.bus), tether.WithRetry(policy),
		tether.WithHeader(header), tether.WithSubprotocols("bearer."+protoSecret),
		tether.WithMiddleware(middleware.Logging(logger, middleware.Inbound)),
		tether.WithOutboundMiddleware(middleware.Logging(logger, middleware.Outbound)),
	)
	if err != nil {
		t.Fatal(err)
	}
	s.rec.expect("connected")
	if got := b.header(0).Get("Authorization"); got != "Bearer "+bearerSecret {
		t.Fatalf("the server got Authorization %q: the secret must travel, only not be logged", got)
	}
	if err := c.SendText(testCtx(t), "hello"); err != nil {
		t.Fatal(err)
	}
	b.next()
	b.stop() // the server dies: the reconnect attempt fails with an error quoting the URL
	s.rec.expect("disconnected")
	s.rec.expect("scheduled #1")
	s.wait(time.Second)
	s.rec.expect("attempt #1")
	s.rec.expect("gave up")
	<-c.Done()
	logErr("client ended", c.Err())
	logErr("close", c.Close(ws.StatusNormalClosure, ""))

	// Dial's own errors.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer refusing.Close()
	_, err = tether.Dial(testCtx(t), secretURL("ws"+strings.TrimPrefix(refusing.URL, "http")), tether.WithHeader(header))
	logErr("refused", err)
	_, err = tether.Dial(testCtx(t), "ws://user:"+passSecret+"@?token="+querySecret)
	logErr("no host", err)
	_, err = tether.Dial(testCtx(t), "ws://h/%zz?token="+querySecret)
	logErr("bad escape", err)
	_, err = core.Dial(testCtx(t), "ws://127.0.0.1:1/x?token="+querySecret, core.Config{})
	logErr("connection refused", err)

	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		nc, err := mute.Accept()
		if err == nil {
			defer nc.Close()
			_, _ = io.Copy(io.Discard, nc)
		}
	}()
	clock := clockwork.NewFakeClock()
	res := make(chan error, 1)
	go func() {
		d := &core.Dialer{Config: core.Config{Clock: clock}, HandshakeTimeout: time.Second, Header: header}
		_, err := d.Dial(context.Background(), "ws://"+mute.Addr().String()+"/?token="+querySecret)
		res <- err
	}()
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	err = <-res
	if !errors.Is(err, core.ErrHandshakeTimeout) {
		t.Fatalf("Dial = %v, want a handshake timeout", err)
	}
	logErr("handshake timeout", err)
	_ = s.bus.Wait(testCtx(t))

	logged := out.String()
	for _, secret := range []string{querySecret, passSecret, bearerSecret, cookieSecret, protoSecret} {
		if i := strings.Index(logged, secret); i >= 0 {
			t.Errorf("secret %s logged: ...%s...", secret, logged[max(0, i-200):min(len(logged), i+100)])
		}
	}
	// The log did quote the URLs, redacted: the test saw what it searched.
	for _, want := range []string{"token=" + core.Redacted, "user:" + core.Redacted + "@", "tether message", "tether.reconnect.gaveup", "HTTP 401"} {
		if !strings.Contains(logged, want) {
			t.Errorf("the log has no %q: the test missed a path\n%s", want, logged)
		}
	}
}
