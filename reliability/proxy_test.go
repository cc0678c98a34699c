package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
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
// Upstream: Shopify/toxiproxy PR #760 (a fix, unreleased in 2.5.0) and
// issues #558, #427, #428.
//
// A strict proxy (the fake-clock tests) fails the test with a clear message
// when a toxic could not be added: the fault would not have hit the live
// connection, and the test would otherwise wait for an event that cannot
// come. A failed removal is recovered from (the connection the toxic was
// for is dead already; new ones go through the fresh proxy, which gets the
// permanent toxics again). The soak's proxies are not strict: a fault that
// could not be added is skipped, and counted.
type proxy struct {
	t        *testing.T
	upstream string
	listen   string
	strict   bool

	mu       sync.Mutex
	p        *toxiproxy.Proxy
	on       map[string]bool // toxics installed
	keep     [][]byte        // permanent toxics (JSON), added again to a replacement
	replaced atomic.Int64
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	px := &proxy{t: t, upstream: upstream, listen: "127.0.0.1:0", on: map[string]bool{}, strict: true}
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
	for _, b := range px.keep { // a fresh proxy, no connection yet: this cannot deadlock
		if _, err := px.p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
			px.t.Fatal(err)
		}
	}
	return false
}

// upstreamBug names the toxiproxy bug behind a failed change.
const upstreamBug = "toxiproxy 2.5.0 deadlocked (known upstream: Shopify/toxiproxy PR #760, issues #558, #427, #428)"

// permanent installs a toxic on both streams for the whole test, also on
// any replacement proxy.
func (px *proxy) permanent(name, typ string, attrs map[string]any) {
	px.t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		n := name + "_" + stream[:len(stream)-len("stream")]
		b := px.toxic(n, typ, stream, attrs)
		px.add(n, typ, stream, attrs)
		px.mu.Lock()
		px.keep = append(px.keep, b)
		px.mu.Unlock()
	}
}

// toxic is the JSON of a toxic.
func (px *proxy) toxic(name, typ, stream string, attrs map[string]any) []byte {
	px.t.Helper()
	b, err := json.Marshal(map[string]any{
		"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs,
	})
	if err != nil {
		px.t.Fatal(err)
	}
	return b
}

// add installs a toxic of type typ on stream ("upstream": client to server,
// "downstream": server to client) under name, with attrs.
func (px *proxy) add(name, typ, stream string, attrs map[string]any) {
	px.t.Helper()
	if !px.tryAdd(name, typ, stream, attrs) && px.strict {
		px.t.Fatalf("toxic %s (%s, %s) not applied: %s; the proxy was replaced (%d so far) and the fault would not hit the live connection",
			name, typ, stream, upstreamBug, px.replaced.Load())
	}
}

// tryAdd is add that reports, instead of failing the test, a toxic that
// toxiproxy could not add (its proxy was then replaced).
func (px *proxy) tryAdd(name, typ, stream string, attrs map[string]any) bool {
	px.t.Helper()
	b := px.toxic(name, typ, stream, attrs)
	if !px.change(func(c *toxiproxy.ToxicCollection) error {
		_, err := c.AddToxicJson(bytes.NewReader(b))
		return err
	}) {
		px.t.Logf("toxic %s (%s, %s) not applied: %s; the proxy was replaced (%d so far)", name, typ, stream, upstreamBug, px.replaced.Load())
		return false
	}
	px.mu.Lock()
	px.on[name] = true
	px.mu.Unlock()
	return true
}

// both installs the same toxic on both streams, named name+"_up" and
// name+"_down".
func (px *proxy) both(name, typ string, attrs map[string]any) {
	px.add(name+"_up", typ, "upstream", attrs)
	px.add(name+"_down", typ, "downstream", attrs)
}

// tryBoth is both that reports whether both toxics were added, instead of
// failing the test when toxiproxy could not add one.
func (px *proxy) tryBoth(name, typ string, attrs map[string]any) bool {
	up := px.tryAdd(name+"_up", typ, "upstream", attrs)
	return px.tryAdd(name+"_down", typ, "downstream", attrs) && up
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
