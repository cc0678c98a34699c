package tethertest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/tethertest"
)

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // wall time: a hang guard, never reached when tests pass
	t.Cleanup(cancel)
	return ctx
}

// world is a Clock, a server on it and a client "k", both without the
// heartbeat unless opts add it (to the client); inbox gets what the client
// receives.
type world struct {
	t     *testing.T
	ctx   context.Context
	clock *tethertest.Clock
	srv   *tethertest.Server
	bus   *events.Bus
	c     *tether.Client
	inbox chan string
}

func newWorld(t *testing.T, opts ...tether.DialOption) *world {
	t.Helper()
	w := &world{t: t, ctx: testCtx(t), clock: tethertest.NewClock(t0), bus: events.NewBus(), inbox: make(chan string, 64)}
	t.Cleanup(w.bus.Close)
	w.clock.Watch(w.bus)
	srv, err := tethertest.NewServer(tether.WithClock(w.clock), tether.WithoutHeartbeat())
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	t.Cleanup(func() { _ = srv.Close() })
	opts = append([]tether.DialOption{srv.DialOption(), tether.WithClock(w.clock), tether.WithBus(w.bus), tether.WithClientID("k"), tether.WithoutHeartbeat(),
		tether.WithHandler(func(_ context.Context, f core.Frame) error { w.inbox <- string(f.Payload); return nil })}, opts...)
	c, err := tether.Dial(w.ctx, srv.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	w.c = c
	t.Cleanup(func() { _ = c.Close(ws.StatusNormalClosure, "") })
	if err := srv.WaitConns(w.ctx, 1); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) settle() {
	w.t.Helper()
	if err := w.clock.Settle(w.ctx); err != nil {
		w.t.Fatal(err)
	}
}

// received returns what the client received so far, once all is at rest.
func (w *world) received() []string {
	w.t.Helper()
	w.settle()
	var got []string
	for {
		select {
		case m := <-w.inbox:
			got = append(got, m)
		default:
			return got
		}
	}
}

// serverGot returns what the server's default handler received so far.
func (w *world) serverGot() []string {
	w.t.Helper()
	w.settle()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	var got []string
	for {
		f, err := w.srv.Next(done)
		if err != nil {
			return got
		}
		got = append(got, string(f.Payload))
	}
}

func equal(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}
}

func TestDefaultServerEchoesAndAnswersPings(t *testing.T) {
	w := newWorld(t)
	for _, m := range []string{"hello", "ping", "world"} {
		if err := w.c.SendText(w.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	equal(t, "client received", w.received(), "hello", "pong", "world")
	equal(t, "server received", w.serverGot(), "hello", "world") // the ping was answered, not handed on
	st := w.srv.Stats()
	if st.Dials != 1 || st.Accepted != 1 || st.Live != 1 || st.ToServer == 0 || st.ToClient == 0 || st.Swallowed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBlackHoleOneWay(t *testing.T) {
	w := newWorld(t)
	w.srv.BlackHole(tethertest.ToServer) // the client talks into the void; the server still reaches it
	if err := w.c.SendText(w.ctx, "lost"); err != nil {
		t.Fatal(err) // a black hole looks like success to the writer
	}
	sc := w.srv.Conns()[0]
	if err := sc.WriteText(w.ctx, "from server"); err != nil {
		t.Fatal(err)
	}
	equal(t, "client received", w.received(), "from server")
	equal(t, "server received", w.serverGot())
	if st := w.srv.Stats(); st.Swallowed == 0 {
		t.Fatalf("stats %+v: nothing swallowed", st)
	}

	w.srv.BlackHole(tethertest.ToClient) // now the other way: the server hears, its echo is lost
	if err := w.c.SendText(w.ctx, "heard"); err != nil {
		t.Fatal(err)
	}
	equal(t, "server received", w.serverGot(), "heard")
	equal(t, "client received", w.received())

	w.srv.BlackHole(0)
	if err := w.c.SendText(w.ctx, "healed"); err != nil {
		t.Fatal(err)
	}
	equal(t, "client received", w.received(), "healed")
}

func TestDelayOnTheClock(t *testing.T) {
	w := newWorld(t)
	w.srv.Delay(3 * time.Second)
	if err := w.c.SendText(w.ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	equal(t, "server received at once", w.serverGot())
	if err := w.clock.Step(w.ctx, 3*time.Second-time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	equal(t, "server received before 3s", w.serverGot())
	if err := w.clock.Step(w.ctx, time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	equal(t, "server received at 3s", w.serverGot(), "slow")
	if err := w.clock.Step(w.ctx, 3*time.Second, 1); err != nil { // the echo takes 3 s back
		t.Fatal(err)
	}
	equal(t, "client received at 6s", w.received(), "slow")
	w.srv.Delay(0)
	if err := w.c.SendText(w.ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	equal(t, "client received without delay", w.received(), "fast")
}

func TestRefuseThenAccept(t *testing.T) {
	w := newWorld(t)
	if err := w.srv.Refuse(http.StatusUnauthorized, 2); err != nil {
		t.Fatal(err)
	}
	dial := func() error {
		c, err := tether.Dial(w.ctx, w.srv.URL(), w.srv.DialOption(), tether.WithClock(w.clock))
		if err == nil {
			_ = c.Close(ws.StatusNormalClosure, "")
		}
		return err
	}
	for range 2 {
		var he *core.HandshakeError
		if err := dial(); !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial = %v, want a 401 HandshakeError", err)
		}
	}
	if err := dial(); err != nil {
		t.Fatalf("third dial: %v", err)
	}
	if err := w.srv.Refuse(http.StatusServiceUnavailable, -1); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := dial(); err == nil {
			t.Fatal("dial accepted while refusing until Accept")
		}
	}
	w.srv.Accept()
	if err := dial(); err != nil {
		t.Fatalf("dial after Accept: %v", err)
	}
	w.settle()
	if st := w.srv.Stats(); st.Refused != 5 || st.Accepted != 3 {
		t.Fatalf("stats %+v, want 5 refused, 3 accepted", st)
	}
	for _, bad := range []int{0, 101, 200 - 1, 600} {
		if err := w.srv.Refuse(bad, 1); err == nil {
			t.Fatalf("Refuse(%d) accepted", bad)
		}
	}
}

func TestCloseAllAndDrop(t *testing.T) {
	w := newWorld(t)
	disc := make(chan events.Disconnected, 4)
	unsub, err := events.Subscribe(w.bus, func(e events.Disconnected) { disc <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	w.srv.CloseAll(4000, "bye")
	w.settle()
	if e := <-disc; e.Code != 4000 || e.Reason != "bye" || !e.Remote {
		t.Fatalf("Disconnected %+v, want 4000 bye from the server", e)
	}

	w2 := newWorld(t)
	unsub2, err := events.Subscribe(w2.bus, func(e events.Disconnected) { disc <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub2()
	w2.srv.Drop()
	w2.settle()
	if e := <-disc; e.Code != ws.StatusAbnormalClosure {
		t.Fatalf("Disconnected %+v, want 1006 after a drop", e)
	}
	if !errors.Is(tethertest.ErrReset, syscall.ECONNRESET) {
		t.Fatal("ErrReset does not match ECONNRESET")
	}
}

func TestTransportAsNetConn(t *testing.T) {
	ctx := testCtx(t)
	srv, err := tethertest.NewServer(tether.WithClock(tethertest.NewClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.DialContext(ctx, "tcp", "ignored:80")
	if err != nil {
		t.Fatal(err)
	}
	if nc.LocalAddr().Network() != "memory" || nc.RemoteAddr().String() != "server" {
		t.Fatalf("addresses %v -> %v", nc.LocalAddr(), nc.RemoteAddr())
	}
	// A deadline in the past fails a read at once, as on a socket.
	if err := nc.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after a past deadline = %v", err)
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Not a WebSocket handshake: the server answers 400 and closes.
	if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufioReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
	if _, err := nc.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.DialContext(ctx, "tcp", "x"); !errors.Is(err, tethertest.ErrServerClosed) {
		t.Fatalf("dial after Close = %v", err)
	}
	if st := srv.Stats(); st.Failed != 1 || st.Dials != 1 {
		t.Fatalf("stats %+v, want 1 dial, 1 failed handshake", st)
	}
}

func TestNewServerRefusesBadOptions(t *testing.T) {
	if _, err := tethertest.NewServer(tether.WithClock(nil)); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("NewServer(WithClock(nil)) = %v", err)
	}
}
