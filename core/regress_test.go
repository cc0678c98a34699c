package core_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
)

// Regression tests for bugs found in review.

func frameBytes(t *testing.T, f ws.Frame) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readSoon reads one frame; the deadline is only a hang guard, reached when
// a reply was left unflushed.
func (p *rawPeer) readSoon(t *testing.T) ws.Frame {
	t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(5 * time.Second)) // wall time: hang guard on a real socket
	defer p.nc.SetReadDeadline(time.Time{})
	f, err := ws.ReadFrame(p.br)
	if err != nil {
		t.Fatalf("no frame: %v (a reply was left in the write buffer)", err)
	}
	return f
}

// A ping and the first byte of the next frame in one TCP segment: the pong
// must be flushed before the read loop blocks for the rest of that frame.
func TestPongFlushedBeforeBlockingOnPartialFrame(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{})
	ping := frameBytes(t, masked(ws.NewPingFrame([]byte("hb"))))
	next := frameBytes(t, masked(ws.NewTextFrame([]byte("hello"))))
	if _, err := p.nc.Write(append(ping, next[0])); err != nil {
		t.Fatal(err)
	}
	if f := p.readSoon(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "hb" {
		t.Fatalf("got %v %q, want pong hb", f.Header.OpCode, f.Payload)
	}
}

// A handler's reply, then the head of a frame bigger than the read buffer:
// the reply goes out before the read loop waits for the big frame.
func TestReplyFlushedBeforeBlockingOnBigFrame(t *testing.T) {
	up := &core.Upgrader{Config: core.Config{Handler: func(ctx context.Context, f core.Frame) error {
		if f.Op == ws.OpText {
			return core.FromContext(ctx).Write(ctx, ws.OpText, f.Payload)
		}
		return nil
	}}}
	p := newRawPeer(t, up)
	msg := frameBytes(t, masked(ws.NewTextFrame([]byte("echo me"))))
	big := frameBytes(t, masked(ws.NewBinaryFrame(make([]byte, 100000))))
	if _, err := p.nc.Write(append(msg, big[:1000]...)); err != nil {
		t.Fatal(err)
	}
	if f := p.readSoon(t); string(f.Payload) != "echo me" {
		t.Fatalf("got %q", f.Payload)
	}
}

// After a write failed on a reset socket, every later Write matches
// ErrClosed, as documented.
func TestWritesAfterFailedWriteMatchErrClosed(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan *core.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		if c, err := (&core.Upgrader{Config: core.Config{Bus: bus}}).Accept(nc); err == nil {
			acc <- c
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := core.ParseURL("ws://" + ln.Addr().String() + "/")
	if _, _, err := (ws.Dialer{}).Upgrade(nc, u); err != nil {
		t.Fatal(err)
	}
	srv := <-acc
	errs := make(chan events.Error, 4)
	unsub, err := events.Subscribe(bus, func(e events.Error) { errs <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	_ = nc.(*net.TCPConn).SetLinger(0)
	_ = nc.Close() // RST
	var first error
	for i := 0; i < 100000 && first == nil; i++ { // until the reset is seen: bounded in count
		first = srv.Write(context.Background(), ws.OpBinary, make([]byte, 1000))
	}
	if !errors.Is(first, core.ErrClosed) {
		t.Fatalf("first failed Write: %v, want ErrClosed", first)
	}
	if second := srv.Write(context.Background(), ws.OpBinary, []byte("x")); !errors.Is(second, core.ErrClosed) {
		t.Fatalf("Write after a failed write: %v, want ErrClosed", second)
	}
	<-srv.Done()
	bus.Wait()
	select {
	case e := <-errs:
		if !e.Fatal || !strings.Contains(e.Err.Error(), "write failed") {
			t.Fatalf("Error event %+v, want a fatal write failure", e)
		}
	default:
		t.Fatal("a failed write published no Error event")
	}
}

// Control frames are bounded by 125 bytes, not by MaxMessageSize.
func TestPingBiggerThanMessageLimit(t *testing.T) {
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{MaxMessageSize: 10}})
	p.send(t, masked(ws.NewPingFrame(bytes.Repeat([]byte("p"), 20))))
	if f := p.readFrame(t); f.Header.OpCode != ws.OpPong || len(f.Payload) != 20 {
		code, reason := ws.ParseCloseFrameData(f.Payload)
		t.Fatalf("got %v %d %q, want a 20-byte pong", f.Header.OpCode, code, reason)
	}
}

// The peer's answer and the close timer race: whichever wins, Close, Serve,
// Err and the Disconnected event tell the same story, and the cause is
// never changed after it was published (checked by -race).
func TestCloseTimerRacingTheAnswerIsConsistent(t *testing.T) {
	for range 50 {
		clock := clockwork.NewFakeClock()
		bus := events.NewBus()
		seen := make(chan error, 1)
		unsub, err := events.Subscribe(bus, func(e events.Disconnected) { seen <- e.Err })
		if err != nil {
			t.Fatal(err)
		}
		p := newRawPeer(t, &core.Upgrader{Config: core.Config{Clock: clock, Bus: bus}})
		closed := make(chan error, 1)
		go func() { closed <- p.srv.Close(ws.StatusNormalClosure, "") }()
		p.readClose(t)
		if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		answered := make(chan error, 1)
		go func() {
			answered <- ws.WriteFrame(p.nc, masked(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
		}()
		clock.Advance(core.DefaultCloseTimeout)
		cerr := waitErr(t, closed)
		serr := waitErr(t, p.serve)
		ev := <-seen
		<-answered
		timedOut := errors.Is(cerr, core.ErrCloseTimeout)
		if cerr != nil && !timedOut {
			t.Fatalf("Close = %v", cerr)
		}
		if errors.Is(serr, core.ErrCloseTimeout) != timedOut || errors.Is(ev, core.ErrCloseTimeout) != timedOut || p.srv.Err() != serr {
			t.Fatalf("inconsistent: Close=%v Serve=%v event=%v Err()=%v", cerr, serr, ev, p.srv.Err())
		}
		unsub()
		bus.Close()
	}
}

type eventLog struct {
	mu  sync.Mutex
	log []string
}

func (l *eventLog) add(s string) { l.mu.Lock(); l.log = append(l.log, s); l.mu.Unlock() }

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.log...)
}

func recordAll(t *testing.T, b *events.Bus) *eventLog {
	t.Helper()
	l := &eventLog{}
	for _, sub := range []func() (func(), error){
		func() (func(), error) { return events.Subscribe(b, func(events.Connected) { l.add("connected") }) },
		func() (func(), error) { return events.Subscribe(b, func(events.MessageOut) { l.add("out") }) },
		func() (func(), error) { return events.Subscribe(b, func(e events.Error) { l.add("error") }) },
		func() (func(), error) {
			return events.Subscribe(b, func(events.Disconnected) { l.add("disconnected") })
		},
	} {
		if _, err := sub(); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// The peer drops TCP without a close frame; writes after that fail with
// ErrClosed, never succeed, and publish nothing after Disconnected.
func TestWritesAfterPeerVanishedFailQuietly(t *testing.T) {
	bus := events.NewBus()
	defer bus.Close()
	l := recordAll(t, bus)
	p := newRawPeer(t, &core.Upgrader{Config: core.Config{Bus: bus}})
	_ = p.nc.Close()
	<-p.srv.Done()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if err := p.srv.WriteText(context.Background(), "late"); !errors.Is(err, core.ErrClosed) {
					t.Errorf("Write after Done: %v, want ErrClosed", err)
					return
				}
			}
		})
	}
	wg.Wait()
	bus.Wait()
	if got := l.snapshot(); got[len(got)-1] != "disconnected" {
		t.Fatalf("events %v: Disconnected is not last", got)
	}
}

// A writer stuck when Close's timer fires: its fatal Error comes before
// Disconnected, every time.
func TestStuckWriterErrorBeforeDisconnected(t *testing.T) {
	for range 20 {
		bus := events.NewBus()
		l := recordAll(t, bus)
		clock := clockwork.NewFakeClock()
		p, writerDone := newStuckPeer(t, &core.Upgrader{Config: core.Config{Bus: bus, Clock: clock}})
		closed := make(chan error, 1)
		go func() { closed <- p.srv.Close(ws.StatusNormalClosure, "") }()
		if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(core.DefaultCloseTimeout)
		waitErr(t, closed)
		waitErr(t, writerDone)
		<-p.srv.Done()
		bus.Wait()
		got := l.snapshot()
		bus.Close()
		if got[len(got)-1] != "disconnected" {
			t.Fatalf("events %v: Disconnected is not last", got)
		}
	}
}

// A server that sends a refusal's status line and then stalls before its
// headers cannot hold a dial past HandshakeTimeout: the timer still bounds
// the read of the refusal's headers.
func TestDialRefusalThatStallsTimesOut(t *testing.T) {
	ctx := testCtx(t)
	clock := clockwork.NewFakeClock()
	client, server := net.Pipe()
	defer server.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
			return
		}
		// net.Pipe is synchronous: once Write returns, the client has read the line.
		_, _ = server.Write([]byte("HTTP/1.1 503 Service Unavailable\r\n"))
	}()
	d := &core.Dialer{Config: core.Config{Clock: clock}, HandshakeTimeout: time.Second,
		NetDial: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
	res := make(chan error, 1)
	go func() { _, err := d.Dial(ctx, "ws://example.com/"); res <- err }()
	<-served // the status line is in; the headers never come
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("Dial succeeded")
		}
		t.Logf("Dial: %v", err)
	case <-ctx.Done():
		t.Fatal("Dial still blocked after HandshakeTimeout: the refusal's headers are not bounded")
	}
}
