package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/cmd/tether/internal/faultproxy"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// rig is the demo's world: an echo server, a fault-injecting proxy in
// front of it, and a client that dials the proxy, all on loopback and on
// one clock. It records what happened for the timeline and the summary.
type rig struct {
	clock  clockwork.Clock
	start  time.Time
	out    *lineWriter
	cliBus *events.Bus
	srvBus *events.Bus
	server *echoServer
	hs     *http.Server
	served chan error
	proxy  *faultproxy.Proxy
	client *tether.Client
	evs    chan events.Event // the client's lifecycle events, for the script
	echoes chan string       // the client's received messages, for the script

	srvMu      sync.Mutex
	srvOpen    int           // the server's Connected minus Disconnected events
	srvChanged chan struct{} // closed when srvOpen changes
	unsubs     []func()

	mu       sync.Mutex
	sent     []string        // accepted by Send, in order
	queued   map[string]bool // Send found the client reconnecting
	atServer map[string]bool // received by the server
	echoed   map[string]bool // echoed back to the client
	seen     []events.Event  // the client's lifecycle events
	faults   []string        // what the script did
	next     int
}

type rigConfig struct {
	clock        clockwork.Clock
	out          *lineWriter
	clientHB     heartbeat.Config
	serverHB     heartbeat.Config
	serverHBOn   bool // false: the server runs no heartbeat
	clientOpts   []tether.DialOption
	showServerHB bool // print the server's pings and pongs too
}

func newRig(ctx context.Context, c rigConfig) (*rig, error) {
	r := &rig{
		clock: c.clock, start: c.clock.Now(), out: c.out,
		cliBus: events.NewBus(), srvBus: events.NewBus(),
		evs:        make(chan events.Event, 4096),
		echoes:     make(chan string, 4096),
		srvChanged: make(chan struct{}),
		queued:     map[string]bool{}, atServer: map[string]bool{}, echoed: map[string]bool{},
	}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	u, err := subscribeLifecycle(r.srvBus, func(e events.Event) {
		switch e.(type) {
		case events.Connected:
			r.serverConns(+1)
		case events.Disconnected:
			r.serverConns(-1)
		}
		switch e.(type) {
		case heartbeat.PingSent, heartbeat.PongReceived:
			if !c.showServerHB {
				return
			}
		}
		r.out.event("server", e)
	})
	if err != nil {
		return nil, err
	}
	r.unsubs = append(r.unsubs, u)
	u, err = subscribeLifecycle(r.cliBus, func(e events.Event) {
		r.out.event("client", e)
		r.mu.Lock()
		r.seen = append(r.seen, e)
		r.mu.Unlock()
		select {
		case r.evs <- e:
		default: // nobody awaits (the real-time demo): the timeline has it anyway
		}
	})
	if err != nil {
		return nil, err
	}
	r.unsubs = append(r.unsubs, u)

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.server, err = newEchoServer(echoConfig{
		bus: r.srvBus, heartbeat: c.serverHB, heartbeatOn: c.serverHBOn, log: quiet,
		opts:      []tether.ServerOption{tether.WithClock(c.clock), tether.WithCloseTimeout(time.Second)},
		onMessage: func(_ ws.OpCode, p []byte) { r.mark(r.atServer, string(p)) },
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.hs = &http.Server{Handler: r.server}
	r.served = make(chan error, 1)
	go func() { r.served <- r.hs.Serve(ln) }()
	r.proxy, err = faultproxy.New(ln.Addr().String())
	if err != nil {
		return nil, err
	}
	opts := append([]tether.DialOption{
		tether.WithClock(c.clock), tether.WithBus(r.cliBus), tether.WithClientID("client"),
		tether.WithHeartbeat(c.clientHB),
		tether.WithHandler(func(_ context.Context, f core.Frame) error {
			r.mark(r.echoed, string(f.Payload))
			select {
			case r.echoes <- string(f.Payload):
			default: // nobody awaits (the real-time demo)
			}
			return nil
		}),
	}, c.clientOpts...)
	r.client, err = tether.Dial(ctx, "ws://"+r.proxy.Addr()+"/ws", opts...)
	if err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

func (r *rig) mark(set map[string]bool, s string) {
	r.mu.Lock()
	set[s] = true
	r.mu.Unlock()
}

// send sends the next numbered message and records whether it was queued.
// It returns the message.
func (r *rig) send() string {
	r.mu.Lock()
	r.next++
	m := fmt.Sprintf("msg-%02d", r.next)
	r.mu.Unlock()
	live := r.client.Conn() != nil && r.client.Queued() == 0
	if err := r.client.SendText(context.Background(), m); err != nil {
		r.say("client", "send", fmt.Sprintf("%s refused: %v", m, err), map[string]any{"msg": m, "err": err.Error()})
		return m
	}
	r.mu.Lock()
	r.sent = append(r.sent, m)
	if !live || r.client.Queued() > 0 {
		r.queued[m] = true
	}
	r.mu.Unlock()
	return m
}

// fault prints one fault on the timeline, then applies it: printed
// first, so that the events it causes come after it.
func (r *rig) fault(name, text string, do func()) {
	drain(r.cliBus, r.srvBus) // what happened before the fault is printed before it
	n := r.proxy.Live()
	r.mu.Lock()
	r.faults = append(r.faults, name)
	r.mu.Unlock()
	r.say("proxy", "fault."+name, fmt.Sprintf("%s (%d live connection(s))", text, n), map[string]any{"fault": name, "conns": n})
	do()
}

func (r *rig) say(who, kind, text string, fields map[string]any) {
	r.out.write(r.clock.Now(), who, kind, text, fields)
}

// await reads the client's events until one satisfies match, or fails
// after a wall-time guard.
func await[E events.Event](r *rig, match func(E) bool) (E, error) {
	var zero E
	name := fmt.Sprintf("%T", (*E)(nil))[1:]
	guard := time.NewTimer(15 * time.Second) // wall time: hang guard; the demo's own steps take milliseconds
	defer guard.Stop()
	for {
		select {
		case e := <-r.evs:
			if x, ok := e.(E); ok && (match == nil || match(x)) {
				return x, nil
			}
		case <-guard.C:
			return zero, fmt.Errorf("demo: no %s event came", name)
		}
	}
}

// serverConns records a change in the server's open connections.
func (r *rig) serverConns(delta int) {
	r.srvMu.Lock()
	r.srvOpen += delta
	close(r.srvChanged)
	r.srvChanged = make(chan struct{})
	r.srvMu.Unlock()
}

// serverIdle waits until every server-side connection has published its
// Disconnected: until then a closing connection may hold a close timer on
// the clock, which a BlockUntil would take for the timer a step awaits.
func (r *rig) serverIdle() error {
	guard := time.NewTimer(15 * time.Second) // wall time: hang guard only
	defer guard.Stop()
	for {
		r.srvMu.Lock()
		n, changed := r.srvOpen, r.srvChanged
		r.srvMu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-guard.C:
			return fmt.Errorf("demo: the server kept %d connection(s) open", n)
		}
	}
}

// awaitEcho waits until the client received m back.
func (r *rig) awaitEcho(m string) error {
	guard := time.NewTimer(15 * time.Second) // wall time: hang guard; an echo over loopback takes microseconds
	defer guard.Stop()
	for {
		select {
		case got := <-r.echoes:
			if got == m {
				return nil
			}
		case <-guard.C:
			return fmt.Errorf("demo: %s was never echoed", m)
		}
	}
}

// close stops everything and waits for every goroutine. The proxy goes
// first: with every socket gone, no close handshake waits on a clock that
// nobody advances.
func (r *rig) close() {
	if r.proxy != nil {
		_ = r.proxy.Close()
	}
	if r.client != nil {
		// With its socket gone, the client ends without waiting on the
		// clock (the simulated demo's fake one included).
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // wall time: hang guard only
		_ = r.client.Shutdown(ctx, ws.StatusNormalClosure, "demo over")
		cancel()
	}
	if r.server != nil {
		r.server.shutdown()
	}
	if r.hs != nil {
		_ = r.hs.Close()
		<-r.served
	}
	drain(r.cliBus, r.srvBus)
	for _, u := range r.unsubs {
		u()
	}
	r.cliBus.Close()
	r.srvBus.Close()
}

// summary is what the demo found, from the events it saw and the
// messages it tracked.
type summary struct {
	Faults            []string
	Disconnects       int // client connections lost
	DeadPeers         int // of which the heartbeat detected
	Reconnects        int
	Attempts          int
	Refused           int // attempts refused at the handshake
	GaveUp            bool
	GaveUpAttempts    int
	Sent, Queued      int
	Delivered, Echoed int
	Lost              []string // written to a connection that died with them
	Unsent            []string // returned by Unsent
	Problems          []string
}

func (r *rig) summarize() summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := summary{Faults: slices.Clone(r.faults), Sent: len(r.sent), Queued: len(r.queued)}
	for _, e := range r.seen {
		switch e := e.(type) {
		case events.Disconnected:
			s.Disconnects++
		case heartbeat.Timeout:
			s.DeadPeers++
		case retry.Reconnected:
			s.Reconnects++
		case retry.Dialing:
			s.Attempts++
		case retry.Scheduled:
			var he *core.HandshakeError
			if errors.As(e.Cause, &he) {
				s.Refused++
			}
		case retry.GaveUp:
			s.GaveUp, s.GaveUpAttempts = true, e.Attempts
			var he *core.HandshakeError
			if errors.As(e.LastErr, &he) {
				s.Refused++
			}
		}
	}
	unsent := map[string]bool{}
	for _, f := range r.client.Unsent() {
		unsent[string(f.Payload)] = true
		s.Unsent = append(s.Unsent, string(f.Payload))
	}
	for _, m := range r.sent {
		switch {
		case r.atServer[m] && unsent[m]:
			s.Problems = append(s.Problems, m+" was both delivered and reported unsent")
		case r.atServer[m]:
			s.Delivered++
			if r.echoed[m] {
				s.Echoed++
			}
		case unsent[m]:
		default:
			// Written to a connection that died with it (the library's
			// documented limit: only an application's acks can tell).
			s.Lost = append(s.Lost, m)
		}
	}
	return s
}

func (s summary) print(out *lineWriter, now time.Time) {
	lines := []string{
		fmt.Sprintf("faults injected: %s", strings.Join(s.Faults, ", ")),
		fmt.Sprintf("connections lost: %d, of which %d dead peer(s) found by the heartbeat", s.Disconnects, s.DeadPeers),
		fmt.Sprintf("reconnects: %d, after %d attempt(s), %d refused at the handshake", s.Reconnects, s.Attempts, s.Refused),
	}
	if s.GaveUp {
		lines = append(lines, fmt.Sprintf("gave up after %d attempt(s) (the server stayed away)", s.GaveUpAttempts))
	}
	lines = append(lines,
		fmt.Sprintf("messages: %d sent, %d of them queued while reconnecting", s.Sent, s.Queued),
		fmt.Sprintf("          %d delivered to the server (%d echoed back)", s.Delivered, s.Echoed),
		fmt.Sprintf("          %d lost with a dead connection %v (written before it was found dead; ack what matters)", len(s.Lost), s.Lost),
		fmt.Sprintf("          %d never sent, returned by Unsent %v", len(s.Unsent), s.Unsent))
	for _, p := range s.Problems {
		lines = append(lines, "PROBLEM: "+p)
	}
	if out.json {
		out.write(now, "", "summary", "", map[string]any{
			"faults": s.Faults, "disconnects": s.Disconnects, "dead_peers": s.DeadPeers, "reconnects": s.Reconnects,
			"attempts": s.Attempts, "refused": s.Refused, "gave_up": s.GaveUp, "gave_up_attempts": s.GaveUpAttempts,
			"sent": s.Sent, "queued": s.Queued, "delivered": s.Delivered, "echoed": s.Echoed,
			"lost": s.Lost, "unsent": s.Unsent, "problems": s.Problems,
		})
		return
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	fmt.Fprintln(out.w, "\nsummary")
	for _, l := range lines {
		fmt.Fprintln(out.w, "  "+l)
	}
}
