package tether

import (
	"context"
	"net/http"

	"github.com/tetherws/tether/core"
)

// Upgrade answers an HTTP request with the WebSocket handshake and returns
// the connection, configured by opts and not yet reading: call Serve. On
// failure the HTTP error response has been written. Same-origin browser
// requests only (see core.Upgrader.CheckOrigin); use Handler or a
// core.Upgrader for more control.
func Upgrade(w http.ResponseWriter, r *http.Request, opts ...Option) (*core.Conn, error) {
	cfg, err := NewConfig(opts...)
	if err != nil {
		http.Error(w, "websocket: server misconfigured", http.StatusInternalServerError)
		return nil, err
	}
	up := core.Upgrader{Config: cfg}
	return up.Upgrade(w, r)
}

// Handler returns an http.Handler that upgrades every request and serves
// the connection on a goroutine of its own until it closes; ServeHTTP
// returns once the connection is upgraded, and net/http's goroutine for
// the request ends. The connection's read loop thus waits for frames on a
// short stack (4 KiB) instead of under net/http's frames (8 KiB), which is
// most of what an idle connection costs. Still one goroutine per
// connection. The handlers' ctx carries the request context's values
// (context.WithoutCancel: net/http cancels it when ServeHTTP returns).
// opts are checked once, here; an invalid option returns an error instead
// of a handler.
func Handler(opts ...Option) (http.Handler, error) {
	cfg, err := NewConfig(opts...)
	if err != nil {
		return nil, err
	}
	up := &core.Upgrader{Config: cfg}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go func() { _ = c.Serve(context.WithoutCancel(r.Context())) }()
	}), nil
}
