package core

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"
)

// Dialer opens client connections. Its zero value dials with the defaults
// of Config. A Dialer may be used for many dials, concurrently.
type Dialer struct {
	// Config is the configuration of every connection this Dialer opens.
	Config

	// Header is sent with the opening handshake (Authorization, Cookie, ...).
	Header http.Header

	// Protocols are the subprotocols offered, in order of preference.
	Protocols []string

	// TLSConfig is used for wss:// URLs. Nil means a default configuration,
	// which verifies the server's certificate against the system roots.
	TLSConfig *tls.Config

	// NetDial opens the transport. Nil means a net.Dialer over TCP. Tests
	// use it to dial in-memory transports.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// HandshakeTimeout bounds the connect and the opening handshake, on
	// Config.Clock. Zero means no bound beyond ctx; negative is an error.
	HandshakeTimeout time.Duration

	// MaxHandshakeBytes bounds the server's answer to the opening handshake
	// (status line and headers); a bigger one fails the dial with
	// ErrHandshakeTooBig. Zero means DefaultMaxHandshakeBytes; negative is
	// an error.
	MaxHandshakeBytes int
}

// errBadStatus: a handshake answer whose status is not three digits.
var errBadStatus = protocolError("handshake answered with a malformed HTTP status")

// statusLineSays reports whether an HTTP status line carries status, a
// valid one (100-599), as exactly three digits after its protocol version.
func statusLineSays(line []byte, status int) bool {
	_, rest, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	if !ok || len(code) != 3 {
		return false
	}
	n := 0
	for _, b := range code {
		if b < '0' || b > '9' {
			return false
		}
		n = n*10 + int(b-'0')
	}
	return n == status && n >= 100 && n <= 599 // RFC 9110 15: classes 1xx to 5xx
}

// Dial dials rawURL with a zero Dialer carrying cfg; see Dialer.Dial.
func Dial(ctx context.Context, rawURL string, cfg Config) (*Conn, error) {
	return (&Dialer{Config: cfg}).Dial(ctx, rawURL)
}

// ParseURL checks a WebSocket URL: the scheme must be ws or wss (http and
// https are taken as ws and wss) and the host must be set. It returns the
// URL with its scheme normalised.
func ParseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, redactError(err, rawURL))
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("%w: scheme %q is not ws or wss", ErrBadURL, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrBadURL, RedactURL(rawURL))
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%w: a WebSocket URL has no fragment", ErrBadURL)
	}
	return u, nil
}

// Dial opens a connection to rawURL (ws:// or wss://) and performs the
// opening handshake, bounded by ctx and by HandshakeTimeout. The returned
// connection is not yet reading: call Serve.
//
// When the server answers with an HTTP status other than 101, the error is
// a *HandshakeError carrying the status, so that a 401 can be told from a
// 503 (errors.As).
func (d *Dialer) Dial(ctx context.Context, rawURL string) (*Conn, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	cfg, err := d.Config.withDefaults()
	if err != nil {
		return nil, err
	}
	if d.HandshakeTimeout < 0 {
		return nil, fmt.Errorf("%w: HandshakeTimeout %v is negative", ErrInvalidConfig, d.HandshakeTimeout)
	}
	if d.MaxHandshakeBytes < 0 {
		return nil, fmt.Errorf("%w: MaxHandshakeBytes %d is negative", ErrInvalidConfig, d.MaxHandshakeBytes)
	}
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}

	dl := &dialing{d: d}
	if d.HandshakeTimeout > 0 {
		dl.netDial = d.NetDial
		if dl.netDial == nil {
			dl.netDial = defaultNetDial
		}
		dl.mu.Lock()
		dl.timer = cfg.Clock.AfterFunc(d.HandshakeTimeout, dl.expire)
		dl.mu.Unlock()
	}
	wd := ws.Dialer{
		WrapConn:        dl.wrapConn,
		ReadBufferSize:  cfg.ReadBufferSize,
		WriteBufferSize: cfg.WriteBufferSize,
		Protocols:       d.Protocols,
		TLSConfig:       d.TLSConfig,
		NetDial:         d.NetDial,
		OnStatusError:   dl.onStatusError,
	}
	if dl.timer != nil {
		wd.NetDial = dl.dialNet // cancellable by the handshake timer
	}
	if len(d.Header) > 0 {
		wd.Header = ws.HandshakeHeaderHTTP(d.Header)
	}
	dialURL := rawURL
	if !strings.HasPrefix(rawURL, u.Scheme+"://") { // http(s) given, or upper case: gobwas wants ws(s)
		dialURL = u.String()
	}
	// The caller's ctx goes to gobwas as it is: a ctx that can never end
	// costs gobwas no watcher goroutine. The handshake timeout is the
	// clock's timer, which cancels the connect and poisons the socket.
	nc, br, hs, err := wd.Dial(ctx, dialURL)
	if err == nil && dl.timer != nil && !dl.stopTimer() {
		err = ErrHandshakeTimeout // the timer fired as the handshake finished: the socket is poisoned
	}
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		dl.stopTimer()
		var se ws.StatusError
		switch {
		case dl.refused != nil:
			return nil, dl.refused
		case errors.As(err, &se):
			// Not three digits (gobwas parses any bytes as digits): no
			// HTTP answer to report, or to retry after.
			return nil, fmt.Errorf("tether: dial %s: %w", redactParsed(u), errBadStatus)
		case dl.expired():
			if errors.Is(err, ErrHandshakeTimeout) {
				return nil, fmt.Errorf("%w after %v", ErrHandshakeTimeout, d.HandshakeTimeout)
			}
			return nil, fmt.Errorf("%w after %v: %w", ErrHandshakeTimeout, d.HandshakeTimeout, redactError(err, rawURL, u.String()))
		}
		// Errors of the layers below may quote the URL, query and all.
		return nil, fmt.Errorf("tether: dial %s: %w", redactParsed(u), redactError(err, rawURL, u.String()))
	}
	if nc == net.Conn(&dl.limited) {
		dl.limited.lift() // br, if any, reads on through it
		nc = dl.limited.Conn
	}
	return newConn(nc, br, nil, true, hs.Protocol, cfg)
}

// defaultNetDial opens a TCP connection, as gobwas/ws does without a
// NetDial; kept in a variable so that a dial does not allocate it.
var defaultNetDial = (&net.Dialer{}).DialContext

// dialing is the state of one Dial, shared with the callbacks gobwas calls:
// one allocation for all of them.
type dialing struct {
	d       *Dialer
	limited handshakeConn // gobwas reads a header line of any length into memory
	refused *HandshakeError
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu       sync.Mutex
	timer    clockwork.Timer // the handshake timeout; nil: none
	timedOut bool
	cancel   context.CancelFunc // the connect's, while it runs
	nc       net.Conn           // the transport, once connected
}

// expire is the handshake timer's callback: it cancels the connect under
// way, or poisons the connected socket so that the handshake's read or
// write fails at once.
func (dl *dialing) expire() {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.timedOut = true
	if dl.cancel != nil {
		dl.cancel()
	}
	if dl.nc != nil {
		dl.limited.poison()
	}
}

func (dl *dialing) expired() bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.timedOut
}

// stopTimer stops the handshake timer and reports whether it had not
// fired. The timer goes before gobwas closes a refused socket, so that a
// test clock never sees the connection gone while its timer is armed.
func (dl *dialing) stopTimer() bool {
	if dl.timer == nil {
		return true
	}
	return dl.timer.Stop()
}

// dialNet connects with a ctx the handshake timer can cancel.
func (dl *dialing) dialNet(ctx context.Context, network, addr string) (net.Conn, error) {
	dl.mu.Lock()
	if dl.timedOut {
		dl.mu.Unlock()
		return nil, ErrHandshakeTimeout
	}
	ctx, cancel := context.WithCancel(ctx)
	dl.cancel = cancel
	dl.mu.Unlock()
	nc, err := dl.netDial(ctx, network, addr)
	dl.mu.Lock()
	dl.cancel = nil
	dl.mu.Unlock()
	cancel()
	return nc, err
}

// wrapConn bounds what the server may send in its answer, and lets the
// handshake timer reach the socket.
func (dl *dialing) wrapConn(nc net.Conn) net.Conn {
	if nc == nil {
		return nil // gobwas wraps a failed dial's nil too
	}
	dl.mu.Lock()
	dl.limited.Conn = nc
	dl.limited.hr = handshakeReader{r: nc, left: handshakeLimit(dl.d.MaxHandshakeBytes)}
	dl.nc = nc
	if dl.timedOut {
		dl.limited.poison()
	}
	dl.mu.Unlock()
	return &dl.limited
}

// onStatusError reads the headers of a refusal (Retry-After and the like),
// at most 64 KiB of them: a hostile server cannot make us buffer more. The
// timer still bounds that read (a server may send a status line and
// stall), and goes once they are read.
func (dl *dialing) onStatusError(status int, _ []byte, resp io.Reader) {
	defer dl.stopTimer()
	br := bufio.NewReader(io.LimitReader(resp, 64<<10))
	line, err := br.ReadSlice('\n')
	if err != nil || !statusLineSays(line, status) {
		return // gobwas reads "1:1" as 111: not an answer to report
	}
	dl.refused = &HandshakeError{StatusCode: status}
	line = bytes.Clone(line)
	if r, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(line), br)), nil); err == nil {
		dl.refused.Header = r.Header
	}
}
