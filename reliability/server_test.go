package reliability_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
)

// The test's application protocol, on top of tether. A client sends
// "m <client> <seq> <filler>" with seq counting from 1 and the filler a
// function of seq, so the server can check every byte. The server answers
// each message with "a <last>", the highest seq it delivered (a cumulative
// acknowledgement).
//
// In acks mode the client resends what was not acknowledged from its
// on-reconnect hook, and the server delivers seq only if it is the next one
// (a lower seq is a duplicate, dropped; a higher one a gap, which must never
// happen). That protocol is what an application needs on top of tether for
// exactly-once, in-order delivery.
//
// In plain mode nothing is resent: the server delivers any seq above the
// last one and counts the seqs it never got. Those, minus what the client
// reports as unsent, are what was lost in flight with a dying connection.
// A seq delivered twice, or a lower seq on the same or a newer connection,
// would mean tether duplicated or reordered a message. A seq never seen
// before that arrives late on an older connection is counted apart: a
// middlebox (the proxy) held it and released it after the new connection
// spoke; no client can order two TCP connections.
type mode int

const (
	plain mode = iota
	acks
)

func (m mode) String() string {
	if m == acks {
		return "acks"
	}
	return "plain"
}

// payload is message seq of client id, with extra filler bytes.
func payload(id string, seq int64, extra int) []byte {
	b := fmt.Appendf(nil, "m %s %d ", id, seq)
	return append(b, bytes.Repeat([]byte{'a' + byte(seq%26)}, int(seq%61)+extra)...)
}

// account is what the server knows of one client's messages.
type account struct {
	last      int64          // highest seq delivered
	delivered []int64        // every seq delivered, in order of delivery
	dups      int64          // acks mode: a seq again (a resend)
	gaps      int64          // acks mode: a seq beyond the next one (must stay 0); plain mode: seqs skipped
	disorder  int64          // plain mode: a duplicate, or a lower seq on the connection that delivered the last one or a newer one (must stay 0)
	late      int64          // plain mode: a seq never delivered before, from an older connection (out of order across connections)
	bad       int64          // a payload not as sent (must stay 0)
	lastGen   int            // the connection that delivered last
	gens      map[string]int // by server connection id, numbered in order of first message
}

// ledger is the server application's state: it outlives connections and
// server restarts, as a database would.
type ledger struct {
	mode    mode
	extra   int // filler bytes beyond the minimum
	mu      sync.Mutex
	acc     map[string]*account
	changed chan struct{} // closed and replaced on every delivery
}

func newLedger(m mode, extra int) *ledger {
	return &ledger{mode: m, extra: extra, acc: map[string]*account{}, changed: make(chan struct{})}
}

// receive records one message and returns the acknowledgement to send.
func (l *ledger) receive(conn *core.Conn, p []byte) (ack []byte, ok bool) {
	f := bytes.SplitN(p, []byte(" "), 4)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(f) != 4 || string(f[0]) != "m" {
		l.account("?").bad++
		return nil, false
	}
	id := string(f[1])
	a := l.account(id)
	gen, ok := a.gens[conn.ID()]
	if !ok {
		gen = len(a.gens) + 1
		a.gens[conn.ID()] = gen
	}
	seq, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil || seq <= 0 || !bytes.Equal(p, payload(id, seq, l.extra)) {
		a.bad++
		return nil, false
	}
	switch {
	case l.mode == acks && seq == a.last+1, l.mode == plain && seq > a.last:
		a.gaps += seq - a.last - 1 // plain mode only: acks mode got here with none
		a.last, a.lastGen = seq, gen
		a.delivered = append(a.delivered, seq)
		close(l.changed)
		l.changed = make(chan struct{})
	case l.mode == acks && seq <= a.last:
		a.dups++
	case l.mode == acks:
		a.gaps++
	case slices.Contains(a.delivered, seq):
		a.disorder++ // plain mode: a duplicate
	case gen < a.lastGen:
		// plain mode: a seq the server never had, from a connection older
		// than the one that delivered the last: bytes a middlebox held
		// back on the old connection, released after the new one spoke.
		a.late++
		a.delivered = append(a.delivered, seq)
	default:
		a.disorder++ // plain mode: a lower seq on the same or a newer connection
	}
	return strconv.AppendInt([]byte("a "), a.last, 10), true
}

func (l *ledger) account(id string) *account {
	a := l.acc[id]
	if a == nil {
		a = &account{gens: map[string]int{}}
		l.acc[id] = a
	}
	return a
}

// get returns a copy of a client's account.
func (l *ledger) get(id string) account {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := *l.account(id)
	a.delivered = append([]int64(nil), a.delivered...)
	a.gens = nil
	return a
}

// forget drops every record, so that a test can measure memory without
// its own bookkeeping.
func (l *ledger) forget() {
	l.mu.Lock()
	l.acc = map[string]*account{}
	l.mu.Unlock()
}

// waitLast waits until the server delivered seq of client id.
// On failure it reports what state returns.
func (l *ledger) waitLast(t *testing.T, id string, seq int64, state func() string) {
	t.Helper()
	guard := time.After(hangGuard) // wall time: hang guard only
	for {
		l.mu.Lock()
		last, ch := l.account(id).last, l.changed
		l.mu.Unlock()
		if last >= seq {
			return
		}
		select {
		case <-ch:
		case <-guard:
			t.Fatalf("%s: the server delivered up to %d, want %d; client: %s", id, last, seq, state())
		}
	}
}

// hangGuard bounds every wait on something real: never reached when the
// tests pass.
const hangGuard = 30 * time.Second

// guarded returns a context that ends hangGuard from now, for one wait.
func guarded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	t.Cleanup(cancel)
	return ctx
}

var errServerDown = errors.New("test server: down")

// server is a tether server (tether.NewServer) on a loopback port that a
// test kills (listener closed, every connection aborted: the peers see the
// socket die) and restarts on the same port. It runs no heartbeat (tether's
// is on by default): a peer's death is the client's to find, as it was
// when these tests were written, and the server's pings would add traffic
// the figures do not account for.
type server struct {
	t    *testing.T
	led  *ledger
	h    http.Handler
	addr string

	mu       sync.Mutex
	hs       *http.Server
	down     bool
	conns    map[*core.Conn]*core.Handle // the handle aborts the connection
	serving  sync.WaitGroup              // http.Server.Serve goroutines
	handlers sync.WaitGroup              // HTTP handlers (hijacked: http.Server.Close does not wait for them); each returns once its connection is set up
	// live counts the connections the track plugin accepted, each released
	// when its Done closes (read loop ended, so no frame of it can reach the
	// ledger any more). A tether.Server serves each connection on its own
	// goroutine and returns, so handlers alone does not cover them.
	live sync.WaitGroup
}

func newServer(t *testing.T, led *ledger) *server {
	t.Helper()
	s := &server{t: t, led: led, conns: map[*core.Conn]*core.Handle{}}
	track := core.PluginFunc(func(h *core.Handle) error {
		c := h.Conn()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.down { // accepted just as the server was killed
			return errServerDown
		}
		s.conns[c] = h
		s.live.Go(func() { <-c.Done() }) // under mu, with down false: kill's Wait cannot have started
		return h.OnClose(func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		})
	})
	h, err := tether.NewServer(
		tether.WithoutHeartbeat(),
		tether.WithPlugin(track),
		tether.WithHandler(func(ctx context.Context, f core.Frame) error {
			if ack, ok := led.receive(core.FromContext(ctx), f.Payload); ok {
				_ = core.FromContext(ctx).Write(ctx, ws.OpText, ack) // a failed write means the connection is going: the client resends
			}
			return nil
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	s.h = h
	s.listen("127.0.0.1:0")
	t.Cleanup(s.kill)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	s.h.ServeHTTP(w, r)
}

func (s *server) listen(addr string) {
	s.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.addr, s.hs, s.down = ln.Addr().String(), hs, false
	s.mu.Unlock()
	s.serving.Add(1)
	go func() { defer s.serving.Done(); _ = hs.Serve(ln) }()
}

// kill stops the server as if its process died: the listener closes and
// every connection is aborted without a close frame. It returns once every
// connection's read loop has ended: no message of the killed server reaches
// the ledger after kill returned (Abort alone does not wait for the read
// loop, and a frame already read would otherwise be delivered late,
// possibly after the restarted server took newer ones).
func (s *server) kill() {
	s.mu.Lock()
	hs := s.hs
	s.hs, s.down = nil, true
	s.mu.Unlock()
	if hs != nil {
		_ = hs.Close()
	}
	s.serving.Wait()
	s.mu.Lock()
	handles := make([]*core.Handle, 0, len(s.conns))
	for _, h := range s.conns {
		handles = append(handles, h)
	}
	s.mu.Unlock()
	for _, h := range handles {
		_ = h.Abort(errServerDown)
	}
	s.handlers.Wait()
	done := make(chan struct{})
	go func() { s.live.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hangGuard): // wall time: hang guard only
		s.t.Fatalf("test server: connections still reading %v after being aborted", hangGuard)
	}
}

// restart brings the server back on the same port.
func (s *server) restart() { s.listen(s.addr) }
