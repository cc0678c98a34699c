package tethertest

// Regression tests from a review of tethertest: each comment names the bug
// the test guards against (fixed since).

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func rawPipe(clock clockwork.Clock) *pipe {
	n := &network{clock: clock, pipes: map[*pipe]struct{}{}}
	p := newPipe(n)
	n.pipes[p] = struct{}{}
	return p
}

// R1: read and write deadlines share one wake-up timer per end, so clearing
// the write deadline cancels the read deadline's wake-up: a blocked Read
// never times out.
func TestRegressReadDeadlineLostBySetWriteDeadline(t *testing.T) {
	p := rawPipe(clockwork.NewRealClock())
	c := p.ends[0]
	defer p.ends[1].Close()
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil { // wall time: a socket deadline
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v", err)
		}
	case <-time.After(2 * time.Second): // wall time: the deadline is 50ms
		t.Fatal("Read still blocked 2s after a 50ms read deadline (SetWriteDeadline(zero) stopped its timer)")
	}
}

// R2: a reader parked with nothing buffered whose peer has closed (eof) is
// reported at rest although its Read is about to return io.EOF.
func TestRegressAtRestWithPendingEOF(t *testing.T) {
	p := rawPipe(clockwork.NewFakeClock())
	h := &p.halves[1] // what the client end reads
	p.mu.Lock()
	p.halves[0].parked = true // server end waiting
	h.parked = true           // client end waiting...
	h.eof = true              // ...and the server closed: its Read will return EOF once it runs
	p.closed[1] = true
	p.mu.Unlock()
	if p.atRest(time.Now()) {
		t.Fatal("atRest = true while a woken reader is about to read EOF")
	}
}

// R3: funcTimer.Reset returns false for an active timer; clockwork (and
// time.Timer) return true.
func TestRegressResetReturnValue(t *testing.T) {
	fc := clockwork.NewFakeClock()
	ft := fc.AfterFunc(time.Second, func() {})
	c := NewClock(time.Now())
	ct := c.AfterFunc(time.Second, func() {})
	if want, got := ft.Reset(time.Second), ct.Reset(time.Second); got != want {
		t.Fatalf("Reset of an active timer: tethertest.Clock %v, FakeClock %v", got, want)
	}
	_ = context.Background
}

// R13: a Write larger than the free buffer space waits mid-write with the
// lock released, so a concurrent Write's bytes land inside it (a TCP
// socket and net.Pipe keep each Write contiguous).
func TestRegressConcurrentWritesInterleave(t *testing.T) {
	p := rawPipe(clockwork.NewRealClock())
	w, r := p.ends[0], p.ends[1]
	defer r.Close()
	defer w.Close()
	const n = 300 << 10
	done := make(chan struct{}, 2)
	for _, c := range []byte{'a', 'b'} {
		go func() {
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = c
			}
			_, _ = w.Write(buf)
			done <- struct{}{}
		}()
	}
	got := make([]byte, 0, 2*n)
	buf := make([]byte, 32<<10)
	for len(got) < 2*n {
		k, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:k]...)
	}
	<-done
	<-done
	runs := 1
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1] {
			runs++
		}
	}
	if runs != 2 {
		t.Fatalf("two concurrent Writes arrived as %d runs, want 2 (each Write contiguous)", runs)
	}
}

// R14: Write of an empty slice on a closed end succeeds.
func TestRegressEmptyWriteAfterClose(t *testing.T) {
	p := rawPipe(clockwork.NewRealClock())
	defer p.ends[1].Close()
	p.ends[0].Close()
	if n, err := p.ends[0].Write(nil); err == nil {
		t.Fatalf("Write(nil) after Close = %d, nil; want net.ErrClosed", n)
	}
}
