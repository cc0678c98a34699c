package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// The heartbeat of the fake-clock scenarios: the recipe's 30 s and 10 s.
var hb = heartbeat.Config{Interval: 30 * time.Second, Timeout: 10 * time.Second}

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// rig is one client, one server and (unless direct) one proxy between
// them, with tether's timers on a fake clock. Only the sockets and the
// proxy run on real time.
type rig struct {
	t     *testing.T
	clock *clockwork.FakeClock
	log   *evlog
	led   *ledger
	srv   *server
	px    *proxy // nil: the client dials the server directly
	app   *app
	stop  chan struct{}
	rnd   *rand.Rand
}

// fault is one way to break the link. inject breaks it, heal repairs it.
type fault struct {
	// inject breaks the link; the client must notice and schedule a
	// reconnect. It reports false when toxiproxy could not add the toxic
	// (its known lock-up): the cycle then ends the connection itself.
	inject func(r *rig) bool
	heal   func(r *rig)
	// failAttempt: a reconnect attempt made while the fault lasts fails
	// (the test makes one in a third of the cycles).
	failAttempt bool
	// silent: the socket does not die, only the heartbeat can tell; the
	// test moves the fake clock through a ping and its timeout.
	silent bool
}

var (
	restartFault = fault{
		inject:      func(r *rig) bool { r.srv.kill(); return true },
		heal:        func(r *rig) { r.srv.restart() },
		failAttempt: true,
	}
	resetFault = fault{
		inject:      func(r *rig) bool { return r.px.tryBoth("rst", "reset_peer", map[string]any{"timeout": 0}) },
		heal:        func(r *rig) { r.px.removeBoth("rst") },
		failAttempt: true,
	}
	blackHoleFault = fault{
		inject: func(r *rig) bool { return r.px.tryBoth("bh", "timeout", map[string]any{"timeout": 0}) },
		heal:   func(r *rig) { r.px.removeBoth("bh") },
		silent: true,
	}
)

// scenario is a delivery test: cycles of fault, detection, reconnect, while
// a sender sends without pause; at the end the server is killed with a few
// messages queued, and the client closed.
type scenario struct {
	faults []fault
	cycles int
	direct bool       // no proxy
	setup  func(*rig) // permanent toxics
	extra  int        // filler bytes per message
}

// result is what a scenario measured.
type result struct {
	cycles, failedAttempts         int
	accepted, delivered, unsent    int64
	resent, dups, lost, bufferFull int64
	late, proxyReplaced, corrupted int64
	notApplied                     int // cycles whose toxic toxiproxy could not add
	causes                         map[string]int
	goroutinesBefore, after        int // tether's and the test's, without toxiproxy's
	proxyLeft                      int // toxiproxy's own goroutines left behind
	wall                           time.Duration
}

func (r result) String() string {
	keys := make([]string, 0, len(r.causes))
	for k := range r.causes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cs []string
	for _, k := range keys {
		cs = append(cs, fmt.Sprintf("%s %d", k, r.causes[k]))
	}
	return fmt.Sprintf("cycles=%d failed_attempts=%d accepted=%d delivered=%d unsent=%d lost_in_flight=%d corrupted=%d late_on_old_conn=%d resent=%d server_dups=%d buffer_full=%d goroutines_before=%d after=%d toxiproxy_leaked=%d proxy_replaced=%d fault_not_applied=%d wall=%v causes=[%s]",
		r.cycles, r.failedAttempts, r.accepted, r.delivered, r.unsent, r.lost, r.corrupted, r.late, r.resent, r.dups, r.bufferFull,
		r.goroutinesBefore, r.after, r.proxyLeft, r.proxyReplaced, r.notApplied, r.wall.Round(time.Millisecond), strings.Join(cs, ", "))
}

// errNotApplied ends a connection whose fault toxiproxy could not inject.
var errNotApplied = errors.New("reliability: toxiproxy could not add the fault; connection ended by the test")

// cause names what ended a connection, for the causes histogram.
func cause(err error) string {
	switch {
	case errors.Is(err, errNotApplied):
		return "fault not applied, ended by the test"
	case errors.Is(err, heartbeat.ErrTimeout):
		return "heartbeat timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return "other: " + err.Error()
}

func runScenario(t *testing.T, sc scenario, m mode) result {
	start := time.Now() // wall time: reported, never asserted
	ignore := goleak.IgnoreCurrent()
	all0, px0 := goroutines()
	res := result{causes: map[string]int{}, goroutinesBefore: all0 - px0}

	r := &rig{t: t, clock: clockwork.NewFakeClockAt(t0), log: newEvlog(t), led: newLedger(m, sc.extra),
		stop: make(chan struct{}), rnd: rand.New(rand.NewPCG(1, uint64(m)))}
	r.srv = newServer(t, r.led)
	url := "ws://" + r.srv.addr + "/ws"
	if !sc.direct {
		r.px = newProxy(t, r.srv.addr)
		url = r.px.url()
	}
	if sc.setup != nil {
		sc.setup(r)
	}
	policy, err := retry.New(retry.WithMaxAttempts(retry.Unlimited))
	if err != nil {
		t.Fatal(err)
	}
	r.app = newApp("c1", m, sc.extra)
	opts := append(r.app.options(),
		tether.WithClock(r.clock), tether.WithBus(r.log.bus), tether.WithHeartbeat(hb),
		tether.WithRetry(policy), tether.WithSendBuffer(64, 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	defer cancel()
	c, err := tether.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	r.app.c = c
	await[events.Connected](r.log)
	go r.app.send(r.stop, nil)

	for i := range sc.cycles {
		// Some traffic first: the fault hits a connection in full flow.
		r.led.waitLast(t, "c1", r.led.get("c1").last+10, r.app.state)
		f := sc.faults[i%len(sc.faults)]
		applied := f.inject(r)
		if !applied {
			// toxiproxy locked up adding the toxic and its proxy was
			// replaced; the live connection still runs through the old
			// one. End it from the client, so that the cycle goes on
			// through the new proxy; the cycle is counted apart.
			res.notApplied++
			r.app.abort(errNotApplied) // false: the old proxy closed it already
		}
		if f.silent && applied {
			step(t, r.clock, 1, hb.Interval) // the ping, into the black hole
			step(t, r.clock, 1, hb.Timeout)  // unanswered: dead
		}
		d := await[events.Disconnected](r.log)
		res.causes[cause(d.Err)]++
		s := await[retry.Scheduled](r.log)
		if f.failAttempt && applied && r.rnd.IntN(3) == 0 {
			step(t, r.clock, 1, s.Delay) // an attempt while the fault lasts
			s = await[retry.Scheduled](r.log)
			res.causes["attempt failed: "+cause(s.Cause)]++
			res.failedAttempts++
		}
		f.heal(r)
		for {
			step(t, r.clock, 1, s.Delay)
			e := r.log.next()
			for {
				if _, ok := e.(retry.Dialing); !ok {
					break
				}
				e = r.log.next()
			}
			if _, ok := e.(events.Connected); ok {
				break
			}
			if s2, ok := e.(retry.Scheduled); ok {
				s = s2
				res.failedAttempts++
				continue
			}
			t.Fatalf("cycle %d: unexpected %s", i, describe(e))
		}
		res.cycles++
	}

	// The end: the sender stops and everything accepted has gone out
	// (acknowledged, in acks mode). Then the server dies, a few messages are sent while the
	// client reconnects, and the client is closed: those are unsent.
	close(r.stop)
	<-r.app.done
	if err := r.app.stopErr(); err != nil {
		t.Fatalf("the sender stopped: %v", err)
	}
	// One more message, once no fault is on: when it has arrived,
	// everything queued before it has gone out.
	r.app.sendOne(t)
	if m == acks {
		r.app.settle(t)
	} else {
		r.led.waitLast(t, "c1", r.app.sentHi.Load(), r.app.state)
	}
	// In acks mode the hook's resends can have everything acknowledged
	// while the queue still flushes its copies: wait for the queue too, or
	// the kill below finds it holding them.
	for guard := time.After(hangGuard); c.Queued() > 0; { // wall time: hang guard only
		select {
		case <-guard:
			t.Fatalf("%d messages still queued after everything was acknowledged", c.Queued())
		default:
			runtime.Gosched()
		}
	}
	r.srv.kill()
	await[retry.Scheduled](r.log)
	const tail = 5
	for range tail {
		n := r.app.sentHi.Load() + 1
		if err := c.Send(context.Background(), ws.OpText, payload("c1", n, sc.extra)); err != nil {
			t.Fatalf("Send while reconnecting: %v", err)
		}
		r.app.sentHi.Store(n)
	}
	if q := c.Queued(); q != tail {
		t.Fatalf("Queued() = %d, want %d", q, tail)
	}
	// No connection to close: the client ends without waiting on the clock.
	err = c.Shutdown(guarded(t), ws.StatusNormalClosure, "bye")
	if !errors.Is(err, tether.ErrUnsent) {
		t.Fatalf("Shutdown = %v, want ErrUnsent", err)
	}
	unsent := c.Unsent()
	if len(unsent) != tail {
		t.Fatalf("Unsent() holds %d, want %d", len(unsent), tail)
	}
	res.lost = r.app.check(t, r.led, unsent)
	acc := r.led.get("c1")
	res.accepted, res.delivered, res.unsent = r.app.sentHi.Load(), int64(len(acc.delivered)), int64(len(unsent))
	res.resent, res.dups, res.bufferFull, res.late = r.app.resent.Load(), acc.dups, r.app.full.Load(), r.app.late
	res.corrupted = acc.bad // check failed the test unless 0

	// Nothing left behind.
	if r.px != nil {
		r.px.stop()
		res.proxyReplaced = r.px.replaced.Load()
	}
	r.log.close()
	verifyNone(t, ignore)
	all1, px1 := goroutines()
	res.after, res.proxyLeft = all1-px1, px1-px0
	res.wall = time.Since(start) // wall time: reported, never asserted
	return res
}

func testScenario(t *testing.T, sc scenario) {
	for _, m := range []mode{acks, plain} {
		t.Run(m.String(), func(t *testing.T) {
			res := runScenario(t, sc, m)
			t.Logf("%s: %v", m, res)
			if m == acks && res.lost != 0 {
				t.Errorf("lost %d", res.lost)
			}
			// With no middlebox, nothing can hold bytes of a dead
			// connection: the killed server reads nothing more once kill
			// returned, so no message can arrive late on an old one.
			if sc.direct && res.late != 0 {
				t.Errorf("%d message(s) late on an old connection with no proxy in between", res.late)
			}
		})
	}
}

// The server is killed (listener closed, every connection aborted) and
// restarted on the same port, 100 times in long mode; the client dials it
// directly. Every message accepted by Send is delivered once and in order
// (acks mode), or delivered at most once and in order, reported unsent, or
// counted as lost in flight (plain mode); no goroutine is left behind.
func TestRestartLoop(t *testing.T) {
	testScenario(t, scenario{faults: []fault{restartFault}, cycles: scale(10, 100), direct: true})
}

// toxiproxy's reset_peer, added to a connection in full flow, closes both
// sides at the next bytes; an attempt made while it lasts is reset during
// the handshake.
func TestResetPeer(t *testing.T) {
	testScenario(t, scenario{faults: []fault{resetFault}, cycles: scale(6, 30)})
}

// A black hole mid-stream: the socket stays open, nothing arrives. Only the
// heartbeat notices (one ping, unanswered for Timeout); the client
// reconnects once the network heals.
func TestBlackHoleDelivery(t *testing.T) {
	testScenario(t, scenario{faults: []fault{blackHoleFault}, cycles: scale(6, 30)})
}

// The slicer cuts every write into segments of 1 to 5 bytes, both ways:
// frames arrive in pieces and are reassembled intact (the server checks
// every byte), through restarts and resets.
func TestSlicer(t *testing.T) {
	testScenario(t, scenario{
		faults: []fault{restartFault, resetFault},
		cycles: scale(4, 20),
		setup: func(r *rig) {
			r.px.permanent("slicer", "slicer", map[string]any{"average_size": 3, "size_variation": 2, "delay": 0})
		},
	})
}

// A bandwidth limit of 256 KB/s each way with 1 KiB messages: the sender
// is held back by the socket, data queues in the proxy, and the faults hit
// a link with much in flight.
func TestBandwidth(t *testing.T) {
	testScenario(t, scenario{
		faults: []fault{restartFault, resetFault, blackHoleFault},
		cycles: scale(6, 30),
		extra:  1024,
		setup: func(r *rig) {
			r.px.permanent("bw", "bandwidth", map[string]any{"rate": 256})
		},
	})
}
