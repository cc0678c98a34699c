package core_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// noted is an event type of the tests' own, as a third party's plugin
// defines one: the set of events is open.
type noted struct {
	ConnID string
	N      int
	At     time.Time
}

func (noted) Topic() string     { return "coretest.noted" }
func (e noted) Source() string  { return e.ConnID }
func (e noted) Time() time.Time { return e.At }

// unheard is an event type nobody ever subscribes to.
type unheard struct{ ConnID string }

func (unheard) Topic() string    { return "coretest.unheard" }
func (e unheard) Source() string { return e.ConnID }
func (unheard) Time() time.Time  { return time.Time{} }

// Abort closes the socket at once, with no close frame: the cause is a
// 1006 *CloseError wrapping the given error, a writer stuck on a peer that
// stopped reading is released, and a second Abort reports ErrClosed.
func TestAbortReleasesAStuckWriter(t *testing.T) {
	p, stuck := newStuckPeer(t, &core.Upgrader{})
	dead := errors.New("peer is gone")
	if err := p.h.Abort(dead); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := waitErr(t, stuck); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("stuck writer got %v, want ErrClosed", err)
	}
	ce := asClose(t, waitErr(t, p.serve))
	if ce.Code != ws.StatusAbnormalClosure || ce.Remote || !errors.Is(ce, dead) {
		t.Fatalf("cause %+v, want local 1006 wrapping the Abort error", ce)
	}
	if err := p.h.Abort(dead); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("second Abort: %v", err)
	}
}

// Abort with a nil cause reports ErrAborted; before Serve it finishes the
// connection by itself.
func TestAbortBeforeServe(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	errs := make(chan events.Error, 2)
	unsub, _ := events.Subscribe(bus, func(e events.Error) { errs <- e })
	defer unsub()
	srv := newTCPServer(t, &core.Upgrader{})
	c, h := dialWithHandle(t, srv.wsURL(), core.Config{Bus: bus})
	if err := h.Abort(nil); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if err := c.Err(); !errors.Is(err, core.ErrAborted) || core.CloseStatus(err) != ws.StatusAbnormalClosure {
		t.Fatalf("Err() = %v", err)
	}
	busWait(t, bus)
	if len(errs) != 1 {
		t.Fatalf("%d Error events, want Abort's one", len(errs))
	}
	if e := <-errs; !e.Fatal || !errors.Is(e.Err, core.ErrAborted) {
		t.Fatalf("Error event %+v, want a fatal ErrAborted", e)
	}
}

// Abort while a close handshake is under way keeps the close's cause,
// closes the socket all the same (the connection ends without waiting for
// the close timer) and reports ErrClosed.
func TestAbortDuringCloseKeepsTheCause(t *testing.T) {
	clock := clockwork.NewFakeClock()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock}})
	if err := p.srv.Close(4000, "first"); err != nil {
		t.Fatal(err)
	}
	p.readClose(t) // and no answer: the close waits for its timer
	if err := p.h.Abort(errors.New("later")); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Abort during a close: %v, want ErrClosed", err)
	}
	waitDone(t, p.srv) // the fake clock never moved
	ce := asClose(t, p.srv.Err())
	if ce.Code != 4000 || ce.Reason != "first" || ce.Remote {
		t.Fatalf("cause %+v, want the close's local 4000 first", ce)
	}
}

// A plugin's inbound middleware sees messages first and may consume them;
// its direct writes skip the outbound chain; once counted, Activity counts
// every frame, control frames included.
func TestPluginInboundDirectWriteAndActivity(t *testing.T) {
	var outSeen [][]byte
	var mu sync.Mutex
	outbound := core.NewChain(func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			mu.Lock()
			outSeen = append(outSeen, slices.Clone(f.Payload))
			mu.Unlock()
			return next(ctx, f)
		}
	})
	in := newInbox()
	var h *core.Handle
	plugin := core.PluginFunc(func(ph *core.Handle) error {
		h = ph
		if err := ph.CountFrames(); err != nil {
			return err
		}
		return ph.UseInbound(func(next core.Handler) core.Handler {
			return func(ctx context.Context, f core.Frame) error {
				if string(f.Payload) == "secret" {
					return ph.WriteDirect(ctx, ws.OpText, []byte("consumed"))
				}
				return next(ctx, f)
			}
		})
	})
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Handler: in.handle, Outbound: outbound, Plugins: []core.Plugin{plugin}}})
	before := h.Activity()
	if before != 1 { // the readiness ping
		t.Fatalf("Activity after one ping = %d", before)
	}
	p.send(t, masked(ws.NewTextFrame([]byte("secret"))))
	p.send(t, masked(ws.NewTextFrame([]byte("hello"))))
	if f := p.readFrame(t); string(f.Payload) != "consumed" {
		t.Fatalf("plugin reply %q", f.Payload)
	}
	if f := in.next(t); string(f.Payload) != "hello" {
		t.Fatalf("handler got %q first: the plugin did not consume its message", f.Payload)
	}
	if got := h.Activity(); got != before+2 {
		t.Fatalf("Activity = %d, want %d", got, before+2)
	}
	mu.Lock()
	if len(outSeen) != 0 {
		t.Fatalf("the outbound chain saw the direct write: %q", outSeen)
	}
	mu.Unlock()
	if h.Conn() != p.srv || h != p.h {
		t.Fatal("the plugin's handle is not the connection's")
	}
	if err := h.WriteDirect(testCtx(t), ws.OpPing, nil); !errors.Is(err, core.ErrBadOpcode) {
		t.Fatalf("WriteDirect of a ping: %v", err)
	}
}

// A bad plugin middleware is refused when the plugin adds it (a nil one)
// or when the chains are composed (one that returns a nil Handler): the
// connection fails before Accept returns it, and the peer is told 1011.
func TestUseInboundRefusesNil(t *testing.T) {
	for name, mw := range map[string]core.Middleware{
		"nil middleware": nil,
		"nil handler":    func(core.Handler) core.Handler { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			plugin := core.PluginFunc(func(h *core.Handle) error { return h.UseInbound(mw) })
			srv := newTCPServer(t, &core.Upgrader{Config: core.Config{Plugins: []core.Plugin{plugin}}})
			c, err := core.Dial(testCtx(t), srv.wsURL(), core.Config{})
			if err != nil {
				t.Fatal(err)
			}
			cliDone := served(c)
			if err := waitErr(t, srv.upErrs); !errors.Is(err, core.ErrInvalidConfig) {
				t.Fatalf("Upgrade = %v, want ErrInvalidConfig", err)
			}
			if ce := asClose(t, waitErr(t, cliDone)); ce.Code != ws.StatusInternalServerError || !ce.Remote {
				t.Fatalf("client cause %+v, want remote 1011", ce)
			}
		})
	}
}

// Events a plugin emits come before the connection's Disconnected, and
// are dropped once the connection finished. With no subscriber for the
// type, Emit publishes nothing.
func TestEmitBeforeDisconnected(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	var mu sync.Mutex
	var got []string
	add := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
	u1, _ := events.Subscribe(bus, func(noted) { add("noted") })
	defer u1()
	u2, _ := events.Subscribe(bus, func(events.Disconnected) { add("disconnected") })
	defer u2()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus}})
	if !core.Emit(p.h, noted{ConnID: p.srv.ID()}) {
		t.Fatal("Emit on an open connection published nothing")
	}
	_ = p.h.Abort(nil)
	waitDone(t, p.srv)
	if core.Emit(p.h, noted{ConnID: p.srv.ID()}) {
		t.Fatal("Emit after Disconnected published")
	}
	if core.Emit(p.h, unheard{}) {
		t.Fatal("Emit without a subscriber published")
	}
	busWait(t, bus)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"noted", "disconnected"}) {
		t.Fatalf("events %v", got)
	}
}

// Emit from another goroutine racing the connection's end: every event for
// which it returned true is delivered, before Disconnected. Racy by nature:
// repeated to make the window likely.
func TestEmitRacingTheEndComesBeforeDisconnected(t *testing.T) {
	for range 20 {
		bus := events.NewBus()
		var mu sync.Mutex
		var got []string
		add := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
		u1, _ := events.Subscribe(bus, func(noted) { add("noted") })
		u2, _ := events.Subscribe(bus, func(events.Disconnected) { add("disconnected") })
		p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus}})
		emitted := make(chan int, 1)
		go func() {
			n := 0
			for core.Emit(p.h, noted{ConnID: p.srv.ID()}) {
				n++
			}
			emitted <- n
		}()
		_ = p.nc.Close() // the peer vanishes
		waitDone(t, p.srv)
		n := waitResult(t, emitted)
		busWait(t, bus)
		mu.Lock()
		if len(got) != n+1 || got[n] != "disconnected" {
			t.Fatalf("%d events emitted, delivered %v: want all of them, then Disconnected", n, got)
		}
		mu.Unlock()
		u1()
		u2()
		bus.Close()
	}
}

type keyA struct{}
type keyB struct{}

// SetValue attaches plugin state that Conn.Value reads; nil removes it;
// keys must be comparable and not nil.
func TestValues(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	c, h := p.srv, p.h
	if c.Value(keyA{}) != nil {
		t.Fatal("value before SetValue")
	}
	mustSet := func(k, v any) {
		t.Helper()
		if err := h.SetValue(k, v); err != nil {
			t.Fatal(err)
		}
	}
	mustSet(keyA{}, 1)
	mustSet(keyB{}, "b")
	mustSet(keyA{}, 2)
	if c.Value(keyA{}) != 2 || c.Value(keyB{}) != "b" {
		t.Fatalf("values %v %v", c.Value(keyA{}), c.Value(keyB{}))
	}
	mustSet(keyA{}, nil)
	if c.Value(keyA{}) != nil || c.Value(keyB{}) != "b" {
		t.Fatal("removal lost the other value")
	}
	if err := h.SetValue([]int{1}, 1); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("incomparable key: %v", err)
	}
	if err := h.SetValue(nil, 1); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("nil key: %v", err)
	}
	if c.Value([]int{1}) != nil {
		t.Fatal("incomparable key found something")
	}
}

// closeOrigins are the ways a serving connection's close can start. The
// peer answers a local Close.
var closeOrigins = map[string]func(t *testing.T, p *rawPeer){
	"local Close": func(t *testing.T, p *rawPeer) {
		if err := p.srv.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Errorf("Close: %v", err)
		}
		p.readClose(t)
		p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))) // answered: no wait for the timeout
	},

	"peer close": func(t *testing.T, p *rawPeer) {
		p.send(t, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, ""))))
	},
	"lost socket": func(t *testing.T, p *rawPeer) { p.nc.Close() },
	"abort":       func(t *testing.T, p *rawPeer) { _ = p.h.Abort(nil) },
	"protocol violation": func(t *testing.T, p *rawPeer) {
		p.send(t, ws.NewTextFrame([]byte("unmasked")))
	},
	"handler error": func(t *testing.T, p *rawPeer) {
		p.send(t, masked(ws.NewTextFrame([]byte("fail"))))
	},
}

// failOnFail is a handler that fails on the message "fail".
func failOnFail(_ context.Context, f core.Frame) error {
	if string(f.Payload) == "fail" {
		return errors.New("asked to fail")
	}
	return nil
}

// OnClose hooks run once when the close starts, whoever starts it, after
// the handlers' ctx was cancelled and before Done and Disconnected; one
// registered after that runs at once, on the caller's goroutine.
func TestOnClose(t *testing.T) {
	for name, closeIt := range closeOrigins {
		t.Run(name, func(t *testing.T) {
			bus := events.NewBus()
			defer bus.Close()
			var log eventLog
			unsub, err := events.Subscribe(bus, func(events.Disconnected) { log.add("disconnected") })
			if err != nil {
				t.Fatal(err)
			}
			defer unsub()
			calls := make(chan string, 4)
			var conn *core.Conn
			var handlerCtx context.Context
			ctxSeen := make(chan struct{})
			plugin := core.PluginFunc(func(h *core.Handle) error {
				conn = h.Conn()
				return h.OnClose(func() {
					select {
					case <-conn.Done():
						t.Error("Done was closed before the hook ran")
					default:
					}
					select {
					case <-ctxSeen:
						if handlerCtx.Err() == nil {
							t.Error("the handlers' ctx was not cancelled before the hook ran")
						}
					default:
					}
					log.add("hook")
					calls <- "hook"
				})
			})
			handler := func(ctx context.Context, f core.Frame) error {
				if handlerCtx == nil {
					handlerCtx = ctx
					close(ctxSeen)
				}
				return failOnFail(ctx, f)
			}
			p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus, Handler: handler, Plugins: []core.Plugin{plugin}}})
			p.send(t, masked(ws.NewTextFrame([]byte("hello")))) // the handler keeps its ctx
			closeIt(t, p)
			waitDone(t, p.srv)
			if len(calls) != 1 {
				t.Fatalf("hook ran %d times", len(calls))
			}
			if err := p.h.OnClose(func() { calls <- "late" }); err != nil || len(calls) != 2 {
				t.Fatalf("late hook: %v, %d calls", err, len(calls))
			}
			if err := p.h.OnClose(nil); !errors.Is(err, core.ErrInvalidConfig) {
				t.Fatalf("nil hook: %v", err)
			}
			busWait(t, bus)
			if got := log.snapshot(); !slices.Equal(got, []string{"hook", "disconnected"}) {
				t.Fatalf("order %v, want the hook before Disconnected", got)
			}
		})
	}
}

// Abort's fatal Error is delivered before Disconnected even when the
// socket dies at the same moment: the connection's end waits for it.
// Racy by nature: repeated to make the window likely.
func TestAbortErrorComesBeforeDisconnected(t *testing.T) {
	for range 50 {
		bus := events.NewBus()
		var mu sync.Mutex
		var got []string
		add := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
		u1, _ := events.Subscribe(bus, func(events.Error) { add("error") })
		u2, _ := events.Subscribe(bus, func(events.Disconnected) { add("disconnected") })
		p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus}})
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; p.nc.Close() })
		close(start)
		_ = p.h.Abort(errors.New("dead"))
		wg.Wait()
		waitDone(t, p.srv)
		busWait(t, bus)
		mu.Lock()
		if len(got) == 0 || got[len(got)-1] != "disconnected" {
			t.Fatalf("events %v: Disconnected is not last", got)
		}
		mu.Unlock()
		u1()
		u2()
		bus.Close()
	}
}

// An OnClose hook may call anything on its own connection and handle:
// Close, Abort, Write, WriteDirect, Ping and Emit return at once (Close and
// Abort with ErrClosed, the writes with ErrClosed: a close is under way),
// and the connection ends. With goroutine identity gone, nothing tells the
// hook's goroutine apart: none of these waits for the connection's end.
func TestOnCloseHookMayUseItsConnection(t *testing.T) {
	type result struct {
		close, abort, write, direct, ping error
	}
	hookPlugin := func(results chan<- result) core.Plugin {
		return core.PluginFunc(func(h *core.Handle) error {
			return h.OnClose(func() {
				c := h.Conn()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var r result
				r.close = c.Close(ws.StatusNormalClosure, "from the hook")
				r.write = c.WriteText(ctx, "from the hook")
				r.direct = h.WriteDirect(ctx, ws.OpText, []byte("direct"))
				r.ping = h.Ping(ctx, nil)
				core.Emit(h, noted{ConnID: c.ID()})
				r.abort = h.Abort(errors.New("from the hook"))
				results <- r
			})
		})
	}
	check := func(t *testing.T, r result) {
		t.Helper()
		for name, err := range map[string]error{"Close": r.close, "Abort": r.abort, "Write": r.write, "WriteDirect": r.direct, "Ping": r.ping} {
			if !errors.Is(err, core.ErrClosed) {
				t.Errorf("%s from the hook: %v, want ErrClosed", name, err)
			}
		}
	}
	for name, closeIt := range closeOrigins {
		if name == "local Close" {
			// The hook's Abort closes the socket before the close frame
			// goes out: nothing to read or answer.
			closeIt = func(t *testing.T, p *rawPeer) {
				if err := p.srv.Close(ws.StatusNormalClosure, ""); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		}
		t.Run("serving/"+name, func(t *testing.T) {
			bus := events.NewBus()
			defer bus.Close()
			unsub, _ := events.Subscribe(bus, func(noted) {})
			defer unsub()
			results := make(chan result, 1)
			p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus, Handler: failOnFail, Plugins: []core.Plugin{hookPlugin(results)}}})
			closeIt(t, p)
			check(t, waitResult(t, results))
			waitDone(t, p.srv)
			waitErr(t, p.serve)
		})
	}
	for name, closeIt := range map[string]func(c *core.Conn, h *core.Handle) error{
		"Close": func(c *core.Conn, _ *core.Handle) error { return c.Close(ws.StatusNormalClosure, "") },
		"Abort": func(_ *core.Conn, h *core.Handle) error { return h.Abort(nil) },
	} {
		t.Run("before Serve/"+name, func(t *testing.T) {
			srv := newTCPServer(t, &core.Upgrader{})
			results := make(chan result, 1)
			c, h := dialWithHandle(t, srv.wsURL(), core.Config{Plugins: []core.Plugin{hookPlugin(results)}})
			if err := returns(t, name, func() error { return closeIt(c, h) }); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			check(t, waitResult(t, results))
			waitDone(t, c)
		})
	}
}

func waitResult[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-testCtx(t).Done():
		t.Fatal("the hook did not run (or did not return)")
		var zero T
		return zero
	}
}

// Without CountFrames the frame path pays nothing, and Activity stays 0.
func TestActivityIsOffUnlessCounted(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	p.send(t, masked(ws.NewTextFrame([]byte("x"))))
	p.send(t, masked(ws.NewPingFrame(nil)))
	p.readFrame(t) // the pong: both frames were read
	if n := p.h.Activity(); n != 0 {
		t.Fatalf("Activity = %d without CountFrames", n)
	}
}

// Emit with nobody subscribed allocates nothing, for an event type the bus
// has never seen as for one it has.
func TestEmitWithoutSubscriberAllocatesNothing(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus}})
	u, err := events.Subscribe(bus, func(noted) {})
	if err != nil {
		t.Fatal(err)
	}
	u() // the bus knows the type, and nobody subscribes any more
	for name, emit := range map[string]func(){
		"known type":   func() { core.Emit(p.h, noted{ConnID: p.srv.ID(), N: 1}) },
		"unknown type": func() { core.Emit(p.h, unheard{ConnID: p.srv.ID()}) },
	} {
		if a := testing.AllocsPerRun(1000, emit); a != 0 {
			t.Fatalf("%s: %v allocations per Emit", name, a)
		}
	}
}
