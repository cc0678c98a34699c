package core

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// DefaultHandshakeTimeout bounds a server-side handshake on a raw net.Conn
// (and, by default, each dial of a tether.Client)
// when Upgrader.HandshakeTimeout is zero: a client that sends its request
// slowly (slow loris) cannot hold a connection longer than this.
const DefaultHandshakeTimeout = 10 * time.Second

// Upgrader accepts server connections, from an http.Handler (Upgrade) or
// from a raw net.Conn (Accept). A zero Upgrader is valid. An Upgrader may be
// used for many connections, concurrently.
type Upgrader struct {
	// Config is the configuration of every connection this Upgrader accepts.
	Config

	// Protocols are the subprotocols this server speaks. The first
	// subprotocol the client offers that is in this list is selected: the
	// client's order of preference wins, as RFC 6455 intends.
	Protocols []string

	// CheckOrigin decides whether a browser's cross-origin request may
	// connect. It is called only when the request carries an Origin header,
	// with that header and the request's Host, once for each Origin line
	// that is not empty: every one must be allowed. Nil allows only
	// same-origin requests: the Origin's host must equal Host. Browsers
	// always send Origin, and a WebSocket is not protected by CORS, so this
	// check is what stops another site from using a visitor's cookies
	// against this server (cross-site WebSocket hijacking).
	//
	// An empty Origin counts as absent, as it does for coder/websocket
	// (gorilla refuses it): browsers never send one (an opaque origin is
	// sent as "null", which the default check refuses), so an empty Origin
	// comes from a client that could as well have left the header out.
	// Upgrade (net/http) and Accept (gobwas/ws) read the request the same
	// way here: both take a bare LF as the end of a header line, as RFC 9112
	// allows a recipient to, and Accept, like net/http, refuses a request
	// with more than one Host with 400.
	CheckOrigin func(origin, host string) bool

	// Header holds extra response headers for the handshake.
	Header http.Header

	// HandshakeTimeout bounds the handshake on a raw net.Conn (Accept), on
	// Config.Clock. Zero means DefaultHandshakeTimeout; negative is an
	// error. Upgrade relies on the http.Server's own timeouts.
	HandshakeTimeout time.Duration

	// MaxHandshakeBytes bounds the request a client sends to Accept (request
	// line and headers); a bigger one is answered with HTTP 431 and fails
	// with ErrHandshakeTooBig. Zero means DefaultMaxHandshakeBytes; negative
	// is an error. Upgrade relies on the http.Server's MaxHeaderBytes.
	MaxHandshakeBytes int
}

// AllowAnyOrigin is a CheckOrigin that accepts every origin. Use it only
// for servers that no browser holding credentials will reach.
func AllowAnyOrigin(origin, host string) bool { return true }

func (u *Upgrader) originAllowed(origin, host string) bool {
	if u.CheckOrigin != nil {
		return u.CheckOrigin(origin, host)
	}
	o, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(o.Host, host)
}

// originsAllowed checks each Origin line of a request, skipping empty ones
// (see CheckOrigin), and returns the first that is not allowed. Checking
// every line, not the first or the last, makes the two paths agree:
// net/http's Header.Get sees the first line, gobwas the lines in order.
func (u *Upgrader) originsAllowed(origins []string, host string) (refused string, ok bool) {
	for _, o := range origins {
		if o != "" && !u.originAllowed(o, host) {
			return o, false
		}
	}
	return "", true
}

// Upgrade answers an HTTP request with the opening handshake and returns
// the connection, not yet reading: call Serve (typically on the handler's
// goroutine, which then becomes the connection's read loop). On failure it
// has already written an HTTP error response (400, 403, 426, ...).
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	cfg, err := u.Config.withDefaults()
	if err != nil {
		http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
		return nil, err
	}
	if origin, ok := u.originsAllowed(r.Header.Values("Origin"), r.Host); !ok {
		http.Error(w, "websocket: origin not allowed", http.StatusForbidden)
		return nil, fmt.Errorf("%w: %q", ErrOriginNotAllowed, origin)
	}
	hu := ws.HTTPUpgrader{Header: u.Header}
	if len(u.Protocols) > 0 {
		hu.Protocol = u.selectProtocol
	}
	nc, rw, hs, err := hu.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		return nil, fmt.Errorf("tether: upgrade: %w", err)
	}
	// Reuse net/http's buffers when they suit: no allocation per connection.
	// The reader is pointed at the socket itself: net/http's reader reads
	// through its own connection state, which would add a layer to every
	// read and keep that state alive for the connection's life.
	var br = rw.Reader
	switch {
	case br.Buffered() > 0: // the client's first frames: keep them
	case br.Size() == cfg.ReadBufferSize:
		br.Reset(nc)
	default:
		br = nil
	}
	var bw = rw.Writer
	if bw.Size() != cfg.WriteBufferSize {
		bw = nil
	}
	return newConn(nc, br, bw, false, hs.Protocol, cfg)
}

// selectProtocol is asked by gobwas about each offered subprotocol in the
// client's order; the first yes is selected.
func (u *Upgrader) selectProtocol(p string) bool {
	return slices.Contains(u.Protocols, p)
}

// Accept performs the server side of the opening handshake on a raw
// connection, bounded by HandshakeTimeout on Config.Clock, and returns the
// connection, not yet reading: call Serve. On failure nc is closed and the
// client has been sent an HTTP error response.
func (u *Upgrader) Accept(nc net.Conn) (*Conn, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: Accept(nil)", ErrInvalidConfig)
	}
	cfg, err := u.Config.withDefaults()
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	timeout := u.HandshakeTimeout
	if timeout < 0 {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: HandshakeTimeout %v is negative", ErrInvalidConfig, timeout)
	}
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	if u.MaxHandshakeBytes < 0 {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: MaxHandshakeBytes %d is negative", ErrInvalidConfig, u.MaxHandshakeBytes)
	}
	var timedOut = make(chan struct{})
	t := cfg.Clock.AfterFunc(timeout, func() {
		close(timedOut)
		_ = nc.SetDeadline(aLongTimeAgo) // wall time: a socket deadline in the past aborts the blocked handshake read
	})

	var (
		host, refused string
		hosts         int
		origins       []string
	)
	up := ws.Upgrader{
		OnHost: func(h []byte) error {
			// RFC 9112 3.2: more than one Host is a 400, as net/http
			// answers; gobwas would take each, and the origin check the
			// last.
			if hosts++; hosts > 1 {
				return ws.RejectConnectionError(
					ws.RejectionStatus(http.StatusBadRequest),
					ws.RejectionReason("more than one Host header"),
				)
			}
			host = string(h)
			return nil
		},
		OnHeader: func(k, v []byte) error {
			// gobwas has canonicalized k and trimmed v.
			if string(k) == "Origin" {
				origins = append(origins, string(v))
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if o, ok := u.originsAllowed(origins, host); !ok {
				refused = o
				return nil, ws.RejectConnectionError(
					ws.RejectionStatus(http.StatusForbidden),
					ws.RejectionReason("origin not allowed"),
				)
			}
			if len(u.Header) > 0 {
				return ws.HandshakeHeaderHTTP(u.Header), nil
			}
			return nil, nil
		},
	}
	if len(u.Protocols) > 0 {
		up.Protocol = func(p []byte) bool { return u.selectProtocol(string(p)) }
	}
	// gobwas reads a header line of any length into memory: the request is
	// read through a limit.
	limited := struct {
		io.Reader
		io.Writer
	}{&handshakeReader{r: nc, left: handshakeLimit(u.MaxHandshakeBytes)}, nc}
	hs, err := up.Upgrade(limited)
	stopped := t.Stop()
	if err == nil && !stopped {
		<-timedOut // the timer fired as the handshake finished: the socket is poisoned
		err = ErrHandshakeTimeout
	}
	if err != nil {
		if errors.Is(err, ErrHandshakeTooBig) && stopped {
			// gobwas answers nothing on a read error; a few bytes on a
			// connection that has had no write yet fit the socket buffer.
			_, _ = io.WriteString(nc, "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}
		_ = nc.Close()
		select {
		case <-timedOut:
			return nil, fmt.Errorf("%w after %v: %w", ErrHandshakeTimeout, timeout, err)
		default:
		}
		if refused != "" {
			return nil, fmt.Errorf("%w: %q", ErrOriginNotAllowed, refused)
		}
		return nil, fmt.Errorf("tether: accept: %w", err)
	}
	return newConn(nc, nil, nil, false, hs.Protocol, cfg)
}

var aLongTimeAgo = time.Unix(1, 0)
