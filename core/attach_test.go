package core_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// How plugins attach: once per connection, when it is created, in order;
// what a failed Attach does; what a Handle registers and when.

// recorder records strings from any goroutine.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.log = append(r.log, s); r.mu.Unlock() }

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// Attach is called once per connection, in the order of Config.Plugins,
// before Dial and Accept return the connection; one Plugin value serves
// any number of connections, each with its own Handle, and every plugin of
// one connection gets the same Handle, whose Conn, Clock and Bus are the
// connection's.
func TestAttachOrderAndHandle(t *testing.T) {
	clock := clockwork.NewFakeClock()
	bus := events.NewBus()
	defer bus.Close()
	var rec recorder
	var mu sync.Mutex
	handles := map[string][]*core.Handle{}
	plugin := func(name string) core.Plugin {
		return core.PluginFunc(func(h *core.Handle) error {
			rec.add(name)
			mu.Lock()
			handles[name] = append(handles[name], h)
			mu.Unlock()
			return nil
		})
	}
	a, b := plugin("a"), plugin("b")
	srv := newTCPServer(t, &core.Upgrader{})
	var conns []*core.Conn
	for i := range 2 {
		c, err := core.Dial(testCtx(t), srv.wsURL(), core.Config{Clock: clock, Bus: bus, Plugins: []core.Plugin{a, b}, ID: fmt.Sprint("conn", i)})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := rec.get(), slices.Repeat([]string{"a", "b"}, i+1); !slices.Equal(got, want) {
			t.Fatalf("after Dial %d: attached %v, want %v", i, got, want)
		}
		conns = append(conns, c)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, c := range conns {
		ha, hb := handles["a"][i], handles["b"][i]
		if ha != hb {
			t.Fatalf("conn %d: the plugins got different handles", i)
		}
		if ha.Conn() != c || ha.Clock() != clock || ha.Bus() != bus {
			t.Fatalf("conn %d: the handle's Conn, Clock or Bus is not the connection's", i)
		}
	}
	if handles["a"][0] == handles["a"][1] {
		t.Fatal("two connections share a handle")
	}
	for _, c := range conns {
		_ = c.Close(ws.StatusNormalClosure, "")
		waitDone(t, c)
	}
}

// errBoom is the error of a plugin that fails to attach.
var errBoom = errors.New("boom")

// A plugin whose Attach fails fails the connection: Accept returns the
// error, the plugins after it are not attached, the hooks of those before
// it run (so that what they armed stops), the peer gets the close frame
// the error calls for and then the end of the stream, and Connected is
// followed by Disconnected. goleak (TestMain) checks that nothing is left
// running.
func TestAttachFailureOnAccept(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		code   ws.StatusCode
		reason string
	}{
		{"any error", errBoom, ws.StatusInternalServerError, "internal error"},
		{"policy", fmt.Errorf("%w: no such tenant", core.ErrPolicy), ws.StatusPolicyViolation, "policy violation"},
		{"close error", &core.CloseError{Code: 4003, Reason: "not allowed"}, 4003, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clockwork.NewFakeClock()
			bus := events.NewBus()
			defer bus.Close()
			l := recordAll(t, bus)
			var rec recorder
			timerStopped := make(chan bool, 1)
			first := core.PluginFunc(func(h *core.Handle) error {
				rec.add("first")
				timer := h.Clock().AfterFunc(time.Minute, func() { rec.add("timer fired") })
				return h.OnClose(func() { rec.add("first's hook"); timerStopped <- timer.Stop() })
			})
			failing := core.PluginFunc(func(h *core.Handle) error { rec.add("failing"); return tc.err })
			never := core.PluginFunc(func(h *core.Handle) error { rec.add("never"); return nil })
			up := &core.Upgrader{Config: core.Config{Clock: clock, Bus: bus, Plugins: []core.Plugin{first, failing, never}}}

			sc, nc := net.Pipe()
			defer nc.Close()
			accepted := make(chan error, 1)
			go func() {
				c, err := up.Accept(sc)
				if c != nil {
					t.Error("Accept returned a connection and an error")
				}
				accepted <- err
			}()
			br := handshake(t, nc)
			f, err := ws.ReadFrame(br)
			if err != nil || f.Header.OpCode != ws.OpClose {
				t.Fatalf("peer read %v %v, want a close frame", f.Header.OpCode, err)
			}
			if code, reason := ws.ParseCloseFrameData(f.Payload); code != tc.code || reason != tc.reason {
				t.Fatalf("close frame %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after the close frame: %v, want EOF: the socket released", err)
			}
			if err := waitErr(t, accepted); !errors.Is(err, tc.err) {
				t.Fatalf("Accept = %v, want the plugin's error", err)
			}
			if stopped := <-timerStopped; !stopped {
				t.Fatal("the first plugin's timer had fired or was stopped already")
			}
			if got := rec.get(); !slices.Equal(got, []string{"first", "failing", "first's hook"}) {
				t.Fatalf("calls %v", got)
			}
			busWait(t, bus)
			if got := l.snapshot(); len(got) < 2 || got[0] != "connected" || got[len(got)-1] != "disconnected" {
				t.Fatalf("events %v, want connected first and disconnected last", got)
			}
		})
	}
}

// The same on the dialing side: Dial returns the plugin's error, the
// server is told 1011 with a masked close frame, and the socket is
// released.
func TestAttachFailureOnDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerGot := make(chan string, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			peerGot <- err.Error()
			return
		}
		defer nc.Close()
		if _, err := ws.Upgrade(nc); err != nil {
			peerGot <- err.Error()
			return
		}
		br := bufio.NewReader(nc)
		f, err := ws.ReadFrame(br)
		if err != nil || f.Header.OpCode != ws.OpClose || !f.Header.Masked {
			peerGot <- fmt.Sprintf("read %v masked=%v %v", f.Header.OpCode, f.Header.Masked, err)
			return
		}
		code, _ := ws.ParseCloseFrameData(ws.UnmaskFrameInPlace(f).Payload)
		_, eof := br.ReadByte()
		peerGot <- fmt.Sprintf("%d %v", code, eof)
	}()
	failing := core.PluginFunc(func(*core.Handle) error { return errBoom })
	c, err := core.Dial(testCtx(t), "ws://"+ln.Addr().String()+"/", core.Config{Plugins: []core.Plugin{failing}})
	if c != nil || !errors.Is(err, errBoom) {
		t.Fatalf("Dial = %v, %v; want no connection and the plugin's error", c, err)
	}
	if got := waitResult(t, peerGot); got != "1011 EOF" {
		t.Fatalf("server saw %q, want a 1011 close frame, then EOF", got)
	}
}

// Registrations (OnControl, UseInbound, UseOutbound, CountFrames) are for
// Attach only: afterwards, from any goroutine, they return ErrAttachOnly
// and change nothing. The other Handle methods work at any time.
func TestRegistrationsAfterAttach(t *testing.T) {
	var late func() map[string]error
	laterDone := make(chan map[string]error, 1)
	plugin := core.PluginFunc(func(h *core.Handle) error {
		late = func() map[string]error {
			mw := func(next core.Handler) core.Handler { return next }
			return map[string]error{
				"OnControl":   h.OnControl(func(ws.OpCode, []byte) {}),
				"UseInbound":  h.UseInbound(mw),
				"UseOutbound": h.UseOutbound(mw),
				"CountFrames": h.CountFrames(),
			}
		}
		// A goroutine the plugin starts may outlive Attach: it gets the
		// same answer.
		go func() { <-h.Conn().Done(); laterDone <- late() }()
		return nil
	})
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Plugins: []core.Plugin{plugin}}})
	for name, err := range late() {
		if !errors.Is(err, core.ErrAttachOnly) {
			t.Errorf("%s after Attach = %v, want ErrAttachOnly", name, err)
		}
	}
	// Nothing was registered: no frame is counted.
	p.send(t, masked(ws.NewPingFrame(nil)))
	p.readFrame(t)
	if n := p.h.Activity(); n != 0 {
		t.Fatalf("Activity = %d: a late CountFrames took effect", n)
	}
	if err := p.h.OnClose(func() {}); err != nil {
		t.Fatalf("OnClose after Attach: %v", err)
	}
	if err := p.h.SetValue(keyA{}, 1); err != nil {
		t.Fatalf("SetValue after Attach: %v", err)
	}
	_ = p.h.Abort(nil)
	for name, err := range waitResult(t, laterDone) {
		if !errors.Is(err, core.ErrAttachOnly) {
			t.Errorf("%s from the plugin's goroutine = %v, want ErrAttachOnly", name, err)
		}
	}
}

// A plugin's outbound middleware sees the application's writes after the
// application's outbound middlewares, and may change, drop or refuse them;
// it does not see the plugin's own WriteDirect or pings. MessageOut
// carries what went on the wire.
func TestUseOutbound(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	out := make(chan string, 8)
	unsub, err := events.Subscribe(bus, func(e events.MessageOut) { out <- string(e.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	var seen recorder
	errDropped := errors.New("refused by the plugin")
	plugin := core.PluginFunc(func(h *core.Handle) error {
		return h.UseOutbound(func(next core.Handler) core.Handler {
			return func(ctx context.Context, f core.Frame) error {
				seen.add(string(f.Payload))
				switch string(f.Payload) {
				case "DROP":
					return nil
				case "REFUSE":
					return errDropped
				}
				return next(ctx, core.Frame{Op: f.Op, Payload: append(f.Payload, '!')})
			}
		})
	})
	upper := func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			return next(ctx, core.Frame{Op: f.Op, Payload: []byte(strings.ToUpper(string(f.Payload)))})
		}
	}
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus, Outbound: core.NewChain(upper), Plugins: []core.Plugin{plugin}}})
	ctx := context.Background()
	if err := p.srv.WriteText(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.WriteText(ctx, "drop"); err != nil {
		t.Fatalf("a dropped message: %v, want nil", err)
	}
	if err := p.srv.WriteText(ctx, "refuse"); !errors.Is(err, errDropped) {
		t.Fatalf("a refused message: %v, want the plugin's error", err)
	}
	if err := p.h.WriteDirect(ctx, ws.OpText, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if err := p.h.Ping(ctx, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HELLO!", "direct", "ping"} {
		if f := p.readFrame(t); string(f.Payload) != want {
			t.Fatalf("peer got %q, want %q", f.Payload, want)
		}
	}
	if got := seen.get(); !slices.Equal(got, []string{"HELLO", "DROP", "REFUSE"}) {
		t.Fatalf("the plugin's outbound middleware saw %q", got)
	}
	busWait(t, bus)
	if len(out) != 1 || <-out != "HELLO!" {
		t.Fatal("MessageOut is not exactly the one message that went out, as sent")
	}
}
