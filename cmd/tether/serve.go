package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/middleware"
)

//go:embed page.html
var pageHTML []byte

// serveFlags are the flags of tether serve.
type serveFlags struct {
	addr        string
	path        string
	logFormat   *choice
	logLevel    *choice
	hb          heartbeatFlags
	anyOrigin   bool
	maxMessage  int64
	onListening func(addr string) // tests: told the bound address
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serveWith(ctx, args, stdout, stderr, nil)
}

func serveWith(ctx context.Context, args []string, stdout, stderr io.Writer, onListening func(string)) error {
	var f serveFlags
	fs := newFlagSet("serve", "tether serve [--addr 127.0.0.1:8080] [--path /ws] [--log-format text|json] [flags]")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&f.path, "path", "/ws", "path of the WebSocket endpoint (the page is at /)")
	f.logFormat = newChoice("text", "text", "json")
	fs.Var(f.logFormat, "log-format", "log format: text|json")
	f.logLevel = newChoice("info", "debug", "info", "warn", "error")
	fs.Var(f.logLevel, "log-level", "log level: debug|info|warn|error (debug adds every ping and pong)")
	f.hb.register(fs, "")
	fs.BoolVar(&f.anyOrigin, "allow-any-origin", false, "accept browsers from any origin (default: same origin only)")
	fs.Int64Var(&f.maxMessage, "max-message-size", core.DefaultMaxMessageSize, "largest message accepted, in bytes (bigger ones close with 1009)")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	f.onListening = onListening
	if err := f.run(ctx, stderr); err != nil {
		if f.logFormat.value == "json" {
			return &jsonExit{err: err}
		}
		return err
	}
	return nil
}

func (f *serveFlags) check() error {
	host, port, err := net.SplitHostPort(f.addr)
	if err != nil {
		return usagef("bad --addr %q: %v", f.addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usagef("bad --addr %q: port %q is not a number from 0 to 65535", f.addr, port)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return usagef("bad --addr %q: host %q is not an IP address or localhost", f.addr, host)
	}
	if err := checkPath(f.path); err != nil {
		return usagef("bad --path %q: %v", f.path, err)
	}
	if f.maxMessage <= 0 {
		return usagef("--max-message-size %d must be positive", f.maxMessage)
	}
	return nil
}

// checkPath accepts an endpoint path: "/" then segments of unreserved
// characters, sub-delimiters, ':' and '@' (RFC 3986 pchar) and valid
// %-escapes; not "/" (the page), no empty segment, no trailing "/", no
// "." or ".." segment. That leaves out every character ServeMux would read
// as a pattern ({}, whitespace) and every one a client would escape.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return errors.New("want an absolute path other than / (the page is served there)")
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return errors.New("empty segment (// or a trailing /)")
		case ".", "..":
			return errors.New(`"." and ".." segments are not allowed`)
		}
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return errors.New("% must start an escape of two hex digits")
			}
			i += 2
		default:
			return fmt.Errorf("character %q is not allowed (letters, digits, -._~!$&'()*+,;=:@ and %%XX escapes)", c)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (f *serveFlags) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(f.logLevel.value)) // the choice allows only valid names
	o := &slog.HandlerOptions{Level: level}
	if f.logFormat.value == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func (f *serveFlags) run(ctx context.Context, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	hb, hbOn, err := f.hb.config()
	if err != nil {
		return err
	}
	log := f.logger(stderr)
	bus := events.NewBus(events.WithLogger(log))
	defer bus.Close()
	unsub, err := subscribeLifecycle(bus, func(e events.Event) { logEvent(log, e) })
	if err != nil {
		return err
	}
	defer unsub()

	s, err := newEchoServer(echoConfig{bus: bus, heartbeat: hb, heartbeatOn: hbOn, anyOrigin: f.anyOrigin, maxMessage: f.maxMessage, log: log})
	if err != nil {
		return err
	}
	pathJS, _ := json.Marshal(f.path) // a JSON string is a JavaScript string literal
	page := bytes.Replace(pageHTML, []byte(`"__TETHER_WS_PATH__"`), pathJS, 1)
	wsPath, _ := url.PathUnescape(f.path) // checkPath allowed only valid escapes
	// Exact paths, no ServeMux: a path it read as a pattern would panic or
	// match more than the endpoint.
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case wsPath:
			s.ServeHTTP(w, r)
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(page)
		default:
			http.NotFound(w, r)
		}
	})
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	addr := ln.Addr().String()
	log.Info("listening", "addr", addr, "ws", "ws://"+addr+f.path, "page", "http://"+addr+"/",
		"heartbeat", heartbeatDesc(hb, hbOn))
	if f.onListening != nil {
		f.onListening(addr)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		s.shutdown()
		return err
	}
	log.Info("shutting down: closing connections with 1001")
	// wall time: the HTTP server's shutdown grace, a real-time bound by nature.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	s.shutdown() // hijacked WebSocket connections are ours to close
	<-served
	drain(bus)
	return err
}

func heartbeatDesc(hb heartbeat.Config, on bool) string {
	if !on {
		return "off"
	}
	return fmt.Sprintf("%v ping, %v timeout", hb.Interval, hb.Timeout)
}

// logEvent logs a lifecycle event: pings and pongs at Debug, trouble at
// Warn, the rest at Info.
func logEvent(log *slog.Logger, e events.Event) {
	text, fields := describe(e)
	level := slog.LevelInfo
	switch e.(type) {
	case heartbeat.PingSent, heartbeat.PongReceived:
		level = slog.LevelDebug
	case heartbeat.PingMissed, heartbeat.Timeout, events.Error:
		level = slog.LevelWarn
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{slog.String("event", e.Topic())}
	for _, k := range sortedKeys(fields) {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	log.LogAttrs(context.Background(), level, text, attrs...)
}

// echoConfig configures the echo server of serve and demo.
type echoConfig struct {
	bus         *events.Bus
	heartbeat   heartbeat.Config
	heartbeatOn bool // false: WithoutHeartbeat (tether's default is on)
	anyOrigin   bool
	maxMessage  int64
	log         *slog.Logger
	opts        []tether.ServerOption // extra options (demo: the clock)
	onMessage   func(op ws.OpCode, payload []byte)
}

// echoServer is the WebSocket endpoint of serve: it answers text "ping"
// with "pong" (and protocol pings, as every tether connection does),
// closes with the code asked for by a text "/close CODE [REASON]", and
// echoes everything else. Its connections stop serving on shutdown.
//
// It upgrades with the core.Upgrader a tether.Server would use
// (tether.ServerUpgrader) rather than with a tether.Server, whose
// ServeHTTP swallows the handshake's error: serve logs why a handshake
// was refused.
type echoServer struct {
	up     *core.Upgrader
	ctx    context.Context // ends at shutdown: connections close with 1001
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	down   bool
	onMsg  func(ws.OpCode, []byte)
	log    *slog.Logger
}

func newEchoServer(c echoConfig) (*echoServer, error) {
	s := &echoServer{onMsg: c.onMessage, log: c.log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	pong, err := heartbeat.Responder(heartbeat.Config{})
	if err != nil {
		return nil, err
	}
	opts := []tether.ServerOption{
		tether.WithMiddleware(middleware.Recover(), middleware.Logging(c.log, middleware.Inbound)),
		tether.WithPlugin(pong),
		tether.WithHandler(s.handle),
		heartbeatOption(c.heartbeat, c.heartbeatOn),
	}
	if c.bus != nil {
		opts = append(opts, tether.WithBus(c.bus))
	}
	if c.maxMessage > 0 {
		opts = append(opts, tether.WithMaxMessageSize(c.maxMessage))
	}
	if c.anyOrigin {
		opts = append(opts, tether.WithCheckOrigin(core.AllowAnyOrigin))
	}
	if s.up, err = tether.ServerUpgrader(append(opts, c.opts...)...); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// ServeHTTP upgrades the request and serves the connection on the
// request's goroutine until it closes.
func (s *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	c, err := s.up.Upgrade(w, r)
	if err != nil { // the HTTP error response went out; say why here
		s.log.Warn("handshake refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", oneLine(err.Error()))
		return
	}
	_ = c.Serve(s.ctx)
}

func (s *echoServer) handle(ctx context.Context, f core.Frame) error {
	c := core.FromContext(ctx)
	if s.onMsg != nil {
		s.onMsg(f.Op, f.Payload)
	}
	if f.Op == ws.OpText {
		if code, reason, ok := parseCloseCommand(f.Payload); ok {
			if err := core.CheckClose(code, reason); err != nil {
				return c.WriteText(ctx, "error: "+oneLine(err.Error()))
			}
			_ = c.Close(code, reason) // starts the close and returns; the read loop reads the peer's answer
			return nil
		}
	}
	return c.Write(ctx, f.Op, f.Payload)
}

// parseCloseCommand recognises "/close CODE [REASON]".
func parseCloseCommand(p []byte) (ws.StatusCode, string, bool) {
	rest, ok := strings.CutPrefix(string(p), "/close ")
	if !ok {
		return 0, "", false
	}
	codeText, reason, _ := strings.Cut(strings.TrimSpace(rest), " ")
	n, err := strconv.ParseUint(codeText, 10, 16)
	if err != nil {
		return 0, "", false
	}
	return ws.StatusCode(n), reason, true
}

// shutdown closes every connection with 1001 and waits for their handlers.
func (s *echoServer) shutdown() {
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

var _ flag.Value = (*choice)(nil)
