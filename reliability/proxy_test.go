package reliability_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// proxy is one toxiproxy proxy, in process, listening on a loopback port
// and forwarding to upstream. Toxics added to it apply to the connections
// through it at once and to those opened later.
//
// toxiproxy 2.5.0 can deadlock when a toxic is added or removed while one
// of its connections is half torn down (a stub blocks for ever sending to
// a writer that has returned, and the collection's lock stays held). When
// that happens the proxy is replaced by a fresh one on the same port: new
// connections go through the new proxy, while those of the old one live on
// with whatever toxics it was left with, until they fail (the heartbeat
// finds a black hole) or the server dies. The tests count replacements.
type proxy struct {
	t        *testing.T
	upstream string
	listen   string

	mu       sync.Mutex
	p        *toxiproxy.Proxy
	on       map[string]bool // toxics installed
	replaced atomic.Int64
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	px := &proxy{t: t, upstream: upstream, listen: "127.0.0.1:0", on: map[string]bool{}}
	px.p = px.start()
	px.listen = px.p.Listen
	t.Cleanup(px.stop)
	return px
}

func (px *proxy) start() *toxiproxy.Proxy {
	px.t.Helper()
	guard := time.After(hangGuard) // wall time: hang guard only
	for {
		srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
		p := toxiproxy.NewProxy(srv, "tether", px.listen, px.upstream)
		err := p.Start()
		if err == nil {
			return p
		}
		select { // a replaced proxy's listener closes asynchronously
		case <-time.After(10 * time.Millisecond): // wall time: the port is freed by another goroutine
		case <-guard:
			px.t.Fatal(err)
		}
	}
}

// addr is where clients dial.
func (px *proxy) addr() string { return px.listen }

func (px *proxy) url() string { return "ws://" + px.addr() + "/ws" }

// stop closes the listener and every connection through the proxy.
func (px *proxy) stop() {
	px.mu.Lock()
	p := px.p
	px.mu.Unlock()
	p.Stop()
}

// toxicDeadline bounds adding or removing a toxic; past it toxiproxy is
// deadlocked (see proxy).
const toxicDeadline = 3 * time.Second

// change runs fn on the toxics of the current proxy; if it does not return
// in time, the proxy is replaced and change reports false.
func (px *proxy) change(fn func(c *toxiproxy.ToxicCollection) error) bool {
	px.t.Helper()
	px.mu.Lock()
	defer px.mu.Unlock()
	done := make(chan error, 1)
	toxics := px.p.Toxics
	go func() { done <- fn(toxics) }()
	select {
	case err := <-done:
		if err != nil {
			px.t.Fatal(err)
		}
		return true
	case <-time.After(toxicDeadline): // wall time: toxiproxy deadlocked
	}
	// The deadlocked proxy's Stop closes its listener, then waits for its
	// accept loop, which waits for the collection's lock: it never
	// returns. Its connections that still work go on working.
	go px.p.Stop()
	px.p = px.start()
	px.on = map[string]bool{}
	px.replaced.Add(1)
	return false
}

// add installs a toxic of type typ on stream ("upstream": client to server,
// "downstream": server to client) under name, with attrs.
func (px *proxy) add(name, typ, stream string, attrs map[string]any) {
	px.t.Helper()
	b, err := json.Marshal(map[string]any{
		"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs,
	})
	if err != nil {
		px.t.Fatal(err)
	}
	if px.change(func(c *toxiproxy.ToxicCollection) error {
		_, err := c.AddToxicJson(strings.NewReader(string(b)))
		return err
	}) {
		px.mu.Lock()
		px.on[name] = true
		px.mu.Unlock()
	}
}

// both installs the same toxic on both streams, named name+"_up" and
// name+"_down".
func (px *proxy) both(name, typ string, attrs map[string]any) {
	px.add(name+"_up", typ, "upstream", attrs)
	px.add(name+"_down", typ, "downstream", attrs)
}

// remove takes a toxic out, if it is still there.
func (px *proxy) remove(name string) {
	px.t.Helper()
	px.mu.Lock()
	on := px.on[name]
	px.mu.Unlock()
	if !on {
		return // gone with a replaced proxy
	}
	if px.change(func(c *toxiproxy.ToxicCollection) error { return c.RemoveToxic(context.Background(), name) }) {
		px.mu.Lock()
		delete(px.on, name)
		px.mu.Unlock()
	}
}

// removeBoth takes out what both installed.
func (px *proxy) removeBoth(name string) {
	px.remove(name + "_up")
	px.remove(name + "_down")
}
