package reliability_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
)

// app is the client side of the test's application protocol (see mode):
// a tether.Client, a sender goroutine and, in acks mode, the resend of
// unacknowledged messages from the on-reconnect hook.
type app struct {
	id     string
	mode   mode
	extra  int
	window int64 // at most this many messages beyond the last acknowledged one
	c      *tether.Client

	sentHi     atomic.Int64 // highest seq Send accepted (returned nil)
	tried      atomic.Int64 // highest seq given to Send: recorded before the call, as an outbox would
	acked      atomic.Int64 // highest seq the server acknowledged
	resent     atomic.Int64 // messages the hook wrote again
	reconnects atomic.Int64 // hooks run
	late       int64        // plain mode, after check: messages the server got late on an older connection
	full       atomic.Int64 // Sends refused with ErrBufferFull (retried later: not accepted)
	sendErr    atomic.Value // the error that stopped the sender, if any
	ackCh      chan struct{}
	upCh       chan struct{}               // a reconnect's hook ran
	done       chan struct{}               // the sender returned
	handle     atomic.Pointer[core.Handle] // the latest connection's: the test may abort it
}

func newApp(id string, m mode, extra int) *app {
	return &app{id: id, mode: m, extra: extra, window: 64,
		ackCh: make(chan struct{}, 1), upCh: make(chan struct{}, 1), done: make(chan struct{})}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// options are the client options the protocol needs: the acknowledgement
// handler and the on-reconnect hook; and a plugin that keeps each
// connection's handle, for abort.
func (a *app) options() []tether.DialOption {
	return []tether.DialOption{
		tether.WithClientID(a.id),
		tether.WithPlugin(core.PluginFunc(func(h *core.Handle) error { a.handle.Store(h); return nil })),
		tether.WithHandler(func(_ context.Context, f core.Frame) error {
			if n, ok := bytes.CutPrefix(f.Payload, []byte("a ")); ok {
				if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
					for old := a.acked.Load(); v > old && !a.acked.CompareAndSwap(old, v); old = a.acked.Load() {
					}
					poke(a.ackCh)
				}
			}
			return nil
		}),
		tether.WithOnReconnect(func(ctx context.Context, conn *core.Conn) error {
			a.reconnects.Add(1)
			defer poke(a.upCh)
			if a.mode != acks {
				return nil
			}
			// Before the queue is flushed: everything sent and not yet
			// acknowledged, in order. The queue then repeats some of it,
			// which the server drops as duplicates.
			// tried, not sentHi: a Send may have returned nil on the old
			// connection and not yet been recorded.
			for n, hi := a.acked.Load()+1, a.tried.Load(); n <= hi; n++ {
				if err := conn.Write(ctx, ws.OpText, payload(a.id, n, a.extra)); err != nil {
					return nil // this connection is gone already; the next reconnect resends
				}
				a.resent.Add(1)
			}
			return nil
		}),
	}
}

// send runs the sender until stop is closed: seq after seq, at most window
// beyond the last acknowledgement, each on a tick of pace if pace is not
// nil. A seq refused with ErrBufferFull is tried again after the next
// reconnect or acknowledgement, so seqs accepted are 1..sentHi with no hole.
// The last seq tried may be refused and left: sendOne sends it.
func (a *app) send(stop <-chan struct{}, pace <-chan time.Time) {
	defer close(a.done)
	ctx := context.Background()
	n := a.sentHi.Load() + 1
	floor := int64(0) // plain mode: what was sent before the last reconnect is never resent, nor waited for
	for {
		select {
		case <-stop:
			return
		default:
		}
		if n-max(a.acked.Load(), floor) > a.window {
			select {
			case <-a.ackCh:
			case <-a.upCh:
				if a.mode == plain {
					floor = n - 1
				}
			case <-stop:
				return
			}
			continue
		}
		if pace != nil {
			select {
			case <-pace:
			case <-stop:
				return
			}
		}
		a.tried.Store(n)
		err := a.c.Send(ctx, ws.OpText, payload(a.id, n, a.extra))
		switch {
		case err == nil:
			a.sentHi.Store(n)
			n++
		case errors.Is(err, tether.ErrBufferFull):
			a.full.Add(1)
			select {
			case <-a.upCh:
				if a.mode == plain {
					floor = n - 1
				}
			case <-a.ackCh:
			case <-stop:
				return
			}
		default:
			a.sendErr.Store(err)
			return
		}
	}
}

// sendOne sends the next seq once the sender has stopped, waiting while
// the send buffer is full.
func (a *app) sendOne(t *testing.T) {
	t.Helper()
	n := a.sentHi.Load() + 1
	guard := time.After(hangGuard) // wall time: hang guard only
	a.tried.Store(n)
	for {
		err := a.c.Send(context.Background(), ws.OpText, payload(a.id, n, a.extra))
		if err == nil {
			a.sentHi.Store(n)
			return
		}
		if !errors.Is(err, tether.ErrBufferFull) {
			t.Fatalf("%s: Send: %v", a.id, err)
		}
		select {
		case <-a.ackCh:
		case <-a.upCh:
		case <-guard:
			t.Fatalf("%s: the send buffer stays full", a.id)
		}
	}
}

// abort ends the client's current connection without a close frame, as a
// dying network would, with cause; it reports false when there is none
// (the client is reconnecting).
func (a *app) abort(cause error) bool {
	conn, h := a.c.Conn(), a.handle.Load()
	if conn == nil || h == nil || h.Conn() != conn {
		return false
	}
	_ = h.Abort(cause)
	return true
}

// state describes the client, for failure messages.
func (a *app) state() string {
	return fmt.Sprintf("accepted %d, acknowledged %d, resent %d, queued %d, connection %v, reconnects %d, buffer full %d",
		a.sentHi.Load(), a.acked.Load(), a.resent.Load(), a.c.Queued(), a.c.Conn() != nil, a.reconnects.Load(), a.full.Load())
}

// stopErr returns the error that stopped the sender, or nil.
func (a *app) stopErr() error {
	err, _ := a.sendErr.Load().(error)
	return err
}

// settle waits until the server acknowledged everything accepted.
func (a *app) settle(t *testing.T) {
	t.Helper()
	guard := time.After(hangGuard) // wall time: hang guard only
	for a.acked.Load() < a.sentHi.Load() {
		select {
		case <-a.ackCh:
		case <-guard:
			t.Fatalf("%s: acknowledged %d of %d", a.id, a.acked.Load(), a.sentHi.Load())
		}
	}
}

// check verifies a client's account once it is over, and returns the
// messages lost in flight: accepted, minus delivered, minus reported unsent,
// in both modes (it must be 0 in acks mode, where check fails the test
// otherwise). unsent is what Client.Unsent reported.
func (a *app) check(t *testing.T, led *ledger, unsent []core.Frame) (lost int64) {
	t.Helper()
	acc := led.get(a.id)
	hi := a.sentHi.Load()
	if acc.bad != 0 {
		t.Errorf("%s: %d message(s) arrived corrupted", a.id, acc.bad)
	}
	us := make(map[int64]bool, len(unsent))
	prev := int64(0)
	for _, f := range unsent {
		s := bytes.SplitN(f.Payload, []byte(" "), 4)
		n, _ := strconv.ParseInt(string(s[2]), 10, 64)
		if !bytes.Equal(f.Payload, payload(a.id, n, a.extra)) || n <= prev || n > hi {
			t.Errorf("%s: Unsent holds %q after seq %d (accepted up to %d)", a.id, f.Payload, prev, hi)
		}
		us[n], prev = true, n
	}
	for _, n := range acc.delivered {
		if us[n] {
			t.Errorf("%s: seq %d was delivered and reported unsent", a.id, n)
		}
		if n > hi {
			t.Errorf("%s: seq %d was delivered but never accepted (accepted up to %d)", a.id, n, hi)
		}
	}
	d := int64(len(acc.delivered))
	lost = hi - d - int64(len(unsent))
	if lost < 0 {
		t.Errorf("%s: delivered %d + unsent %d > accepted %d", a.id, d, len(unsent), hi)
	}
	switch a.mode {
	case acks:
		// Delivered exactly once, in order, all of them: the server's
		// sequence check made delivered 1..last; the gaps counter says no
		// message ever overtook a lost one.
		if acc.gaps != 0 {
			t.Errorf("%s: %d message(s) arrived after a lost one (a resend came too late)", a.id, acc.gaps)
		}
		if lost != 0 || acc.last != d {
			t.Errorf("%s: lost %d: delivered %d (last %d) + unsent %d, accepted %d", a.id, lost, d, acc.last, len(unsent), hi)
		}
	default:
		if acc.disorder != 0 {
			t.Errorf("%s: %d message(s) duplicated or reordered by tether", a.id, acc.disorder)
		}
		a.late = acc.late
	}
	return lost
}
