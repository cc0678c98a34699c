package core_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// ctx bounds a write: if it ends while the write waits on the socket (a
// peer that stopped reading) or behind another writer stuck there, the
// connection is aborted, since a frame may have been half written, and the
// write returns an error matching both ErrClosed and ctx's error. These
// tests use net.Pipe, where a write waits until the peer reads, and end
// the ctx by hand or in a synctest bubble: no wall clock.

// writeCalls are the ways to write that ctx bounds.
var writeCalls = map[string]func(p *rawPeer, ctx context.Context) error{
	"Write": func(p *rawPeer, ctx context.Context) error {
		return p.srv.Write(ctx, ws.OpBinary, make([]byte, 10<<10))
	},
	"WriteText": func(p *rawPeer, ctx context.Context) error { return p.srv.WriteText(ctx, "hello") },
	"Handle.WriteDirect": func(p *rawPeer, ctx context.Context) error {
		return p.h.WriteDirect(ctx, ws.OpText, []byte("direct"))
	},
	"Handle.Ping": func(p *rawPeer, ctx context.Context) error { return p.h.Ping(ctx, []byte("ping")) },
}

func TestWriteCtxEndingOnAStuckSocketAborts(t *testing.T) {
	for name, write := range writeCalls {
		t.Run(name, func(t *testing.T) {
			bus := events.NewBus()
			defer bus.Close()
			errs := make(chan events.Error, 4)
			unsub, _ := events.Subscribe(bus, func(e events.Error) { errs <- e })
			defer unsub()
			var w writeSignal
			p := newPipePeer(t, &core.Upgrader{Config: core.Config{Bus: bus}}, w.wrap)
			writing := w.arm()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- write(p, ctx) }()
			wait(t, writing) // in the socket; the peer reads nothing
			cancel()
			err := waitErr(t, res)
			if !errors.Is(err, core.ErrClosed) || !errors.Is(err, context.Canceled) {
				t.Fatalf("%s = %v, want an error matching ErrClosed and context.Canceled", name, err)
			}
			waitDone(t, p.srv)
			ce := asClose(t, p.srv.Err())
			if ce.Code != ws.StatusAbnormalClosure || ce.Remote || !errors.Is(ce, context.Canceled) {
				t.Fatalf("cause %+v, want a local 1006 (aborted) wrapping context.Canceled", ce)
			}
			busWait(t, bus)
			if e := <-errs; !e.Fatal || !errors.Is(e.Err, context.Canceled) {
				t.Fatalf("Error event %+v, want a fatal one wrapping context.Canceled", e)
			}
		})
	}
}

// doneWatch is a context that tells when its Done method has been called
// n times: a write calls it once to check ctx, once more to watch it while
// it waits (context.AfterFunc).
type doneWatch struct {
	context.Context
	calls atomic.Int32
	n     int32
	once  sync.Once
	seen  chan struct{}
}

func (d *doneWatch) Done() <-chan struct{} {
	if d.calls.Add(1) == d.n {
		d.once.Do(func() { close(d.seen) })
	}
	return d.Context.Done()
}

// A write that waits behind another writer stuck on the socket is bounded
// by its own ctx too: when it ends, the connection is aborted, both
// writers are released, and the bounded one reports ErrClosed and ctx's
// error.
func TestWriteCtxEndingBehindAStuckWriterAborts(t *testing.T) {
	var w writeSignal
	p := newPipePeer(t, &core.Upgrader{}, w.wrap)
	writing := w.arm()
	stuck := make(chan error, 1)
	go func() { stuck <- p.srv.WriteText(context.Background(), "stuck") }()
	wait(t, writing)

	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := &doneWatch{Context: base, n: 2, seen: make(chan struct{})}
	bounded := make(chan error, 1)
	go func() { bounded <- p.srv.WriteText(ctx, "behind") }()
	wait(t, ctx.seen) // the write watches its ctx: it waits for the writer
	cancel()
	if err := waitErr(t, bounded); !errors.Is(err, core.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("bounded write = %v, want ErrClosed and context.Canceled", err)
	}
	if err := waitErr(t, stuck); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("stuck write = %v, want ErrClosed", err)
	}
	waitDone(t, p.srv)
	if ce := asClose(t, p.srv.Err()); ce.Code != ws.StatusAbnormalClosure || !errors.Is(ce, context.Canceled) {
		t.Fatalf("cause %+v", ce)
	}
}

// The same with a deadline, in a synctest bubble where time passes only
// when every goroutine waits: a Write with a 1 s timeout to a peer that
// never reads returns an error matching ErrClosed and
// context.DeadlineExceeded once the bubble's clock reaches the deadline.
func TestWriteDeadlineOnAStuckSocketAborts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, nc := net.Pipe()
		defer nc.Close()
		accepted := make(chan *core.Conn, 1)
		go func() {
			c, err := (&core.Upgrader{}).Accept(sc)
			if err != nil {
				t.Error(err)
			}
			accepted <- c
		}()
		handshake(t, nc)
		c := <-accepted
		if c == nil {
			t.FailNow()
		}
		served := make(chan error, 1)
		go func() { served <- c.Serve(context.Background()) }()

		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := c.WriteText(ctx, "never read")
		if !errors.Is(err, core.ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Write = %v, want ErrClosed and context.DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("Write returned after %v of the bubble's time, want the 1 s deadline", waited)
		}
		<-served
		if ce := asClose(t, c.Err()); ce.Code != ws.StatusAbnormalClosure || !errors.Is(ce, context.DeadlineExceeded) {
			t.Fatalf("cause %+v", ce)
		}
	})
}

// A ctx that ends after the write returned changes nothing: the
// connection stays open.
func TestWriteCtxEndingAfterTheWriteLeavesTheConnectionOpen(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.srv.WriteText(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.srv.WriteText(context.Background(), "two"); err != nil {
		t.Fatalf("Write after the first write's ctx ended: %v", err)
	}
	for _, want := range []string{"one", "two"} {
		if f := p.readFrame(t); string(f.Payload) != want {
			t.Fatalf("peer got %q, want %q", f.Payload, want)
		}
	}
	// A round trip through the read loop: the connection is up.
	p.send(t, masked(ws.NewPingFrame([]byte("up?"))))
	if f := p.readFrame(t); f.Header.OpCode != ws.OpPong {
		t.Fatalf("got %v, want a pong", f.Header.OpCode)
	}
	if err := p.srv.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	// A ctx that ended before the write: its error, and no abort.
	if err := p.srv.WriteText(ctx, "three"); !errors.Is(err, context.Canceled) || errors.Is(err, core.ErrClosed) {
		t.Fatalf("Write with an ended ctx = %v, want context.Canceled alone", err)
	}
	if err := p.srv.WriteText(context.Background(), "four"); err != nil {
		t.Fatalf("Write after a refused one: %v", err)
	}
	if f := p.readFrame(t); string(f.Payload) != "four" {
		t.Fatalf("peer got %q", f.Payload)
	}
}

// Once a close is under way, a write's ctx ending does not abort the
// connection: the close timer bounds the write, and the close frame that
// waits behind it still goes out. A handler's ctx (and any ctx derived
// from it) ends as the close starts, so without this a reply in flight
// would turn every graceful close into a 1006.
func TestWriteCtxEndingDuringACloseLetsTheCloseFrameOut(t *testing.T) {
	var w writeSignal
	p := newPipePeer(t, &core.Upgrader{}, w.wrap)
	writing := w.arm()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- p.srv.WriteText(ctx, "in flight") }()
	wait(t, writing) // in the socket; the peer reads nothing yet
	if err := p.srv.Close(ws.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	cancel() // as a handler's ctx would end
	if f := p.readFrame(t); f.Header.OpCode != ws.OpText || string(f.Payload) != "in flight" {
		t.Fatalf("first frame %v %q, want the write in flight", f.Header.OpCode, f.Payload)
	}
	// The writer that held the writer sends the close frame handed to it
	// before it returns: read it first (net.Pipe has no buffer).
	if code, reason := p.readClose(t); code != ws.StatusNormalClosure || reason != "bye" {
		t.Fatalf("close frame %d %q, want 1000 bye", code, reason)
	}
	if err := waitErr(t, res); err != nil {
		t.Fatalf("the write in flight = %v", err)
	}
	if err := ws.WriteFrame(p.nc, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
		<-p.srv.Done()
		t.Fatalf("answering the close: %v (the server ended: %v)", err, p.srv.Err())
	}
	waitDone(t, p.srv)
	if ce := asClose(t, p.srv.Err()); ce.Code != ws.StatusNormalClosure || ce.Err != nil {
		t.Fatalf("cause %+v, want a clean 1000", ce)
	}
}
