package tethertest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
)

// Clock is a clockwork.FakeClock that can tell when the code under test is
// at rest, and so can be advanced safely. Advancing a fake clock while a
// goroutine has not yet armed its timer, or while a pong is still in
// flight, is the usual cause of flaky fake-clock tests; Step waits for
// both.
//
// Pass it to tether.WithClock like any clockwork.Clock. A Server created
// with it is watched automatically; Watch adds a bus. clockwork.WithTimeout
// and WithDeadline recognise only *clockwork.FakeClock: give them
// clock.FakeClock (their timers are then not followed by Step).
type Clock struct {
	*clockwork.FakeClock

	mu       sync.Mutex
	funcs    map[*funcTimer]struct{} // AfterFunc timers armed
	chans    map[*chanTimer]struct{} // channel timers not stopped
	tickers  map[*ticker]struct{}    // tickers not stopped
	inflight int                     // AfterFunc callbacks fired and not returned
	servers  []*Server
	buses    []*events.Bus
	wake     chan struct{}
}

// NewClock returns a Clock set to start.
func NewClock(start time.Time) *Clock {
	return &Clock{
		FakeClock: clockwork.NewFakeClockAt(start),
		funcs:     map[*funcTimer]struct{}{},
		chans:     map[*chanTimer]struct{}{},
		tickers:   map[*ticker]struct{}{},
		wake:      make(chan struct{}, 1),
	}
}

var _ clockwork.Clock = (*Clock)(nil)

func (c *Clock) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Watch makes Settle and Step also wait until every event published on b
// so far has been delivered.
func (c *Clock) Watch(b *events.Bus) {
	if b == nil {
		return
	}
	c.mu.Lock()
	c.buses = append(c.buses, b)
	c.mu.Unlock()
}

func (c *Clock) watchServer(s *Server) {
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
}

// funcTimer is an AfterFunc timer whose callback Clock follows.
type funcTimer struct {
	c     *Clock
	t     clockwork.Timer
	at    time.Time
	armed bool
}

// AfterFunc is FakeClock.AfterFunc, followed: until f returns, the clock is
// not at rest.
func (c *Clock) AfterFunc(d time.Duration, f func()) clockwork.Timer {
	ft := &funcTimer{c: c}
	c.mu.Lock()
	defer c.mu.Unlock()
	ft.arm(d)
	ft.t = c.FakeClock.AfterFunc(d, func() {
		defer c.returned()
		f()
	})
	return ft
}

// arm records the timer as armed to fire d from now; d <= 0 fires at once.
// c.mu is held.
func (ft *funcTimer) arm(d time.Duration) {
	c := ft.c
	if d <= 0 {
		ft.armed = false
		delete(c.funcs, ft)
		c.inflight++
		return
	}
	ft.at, ft.armed = c.FakeClock.Now().Add(d), true
	c.funcs[ft] = struct{}{}
}

func (c *Clock) returned() {
	c.mu.Lock()
	c.inflight--
	c.mu.Unlock()
	c.signal()
}

// Chan returns nil: an AfterFunc timer has no channel.
func (ft *funcTimer) Chan() <-chan time.Time { return nil }

// Stop stops the timer; see clockwork.Timer.
func (ft *funcTimer) Stop() bool {
	c := ft.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := ft.t.Stop()
	if ok {
		ft.armed = false
		delete(c.funcs, ft)
	}
	return ok
}

// Reset re-arms the timer; see clockwork.Timer.
func (ft *funcTimer) Reset(d time.Duration) bool {
	c := ft.c
	c.mu.Lock()
	defer c.mu.Unlock()
	wasArmed := false
	if ft.armed && ft.t.Stop() {
		ft.armed = false
		delete(c.funcs, ft)
		wasArmed = true
	}
	ft.arm(d)
	ft.t.Reset(d)
	return wasArmed
}

// chanTimer is a channel timer: the clock is not at rest while it has
// fired and nobody has received from its channel yet.
type chanTimer struct {
	c     *Clock
	t     clockwork.Timer
	at    time.Time
	polls int // Settle's polls since it fired with nobody receiving
}

// abandonAfter is how many of Settle's polls a fired, unreceived channel
// timer keeps the clock busy: past it, the timer is taken as abandoned
// (the usual select on clock.After and a reply that won the race).
const abandonAfter = 10000

// NewTimer is FakeClock.NewTimer, followed.
func (c *Clock) NewTimer(d time.Duration) clockwork.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := &chanTimer{c: c, t: c.FakeClock.NewTimer(d), at: c.FakeClock.Now().Add(d)}
	c.chans[ct] = struct{}{}
	return ct
}

// After is NewTimer(d).Chan().
func (c *Clock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).Chan() }

// Chan is the timer's channel.
func (ct *chanTimer) Chan() <-chan time.Time { return ct.t.Chan() }

// Stop stops the timer; the clock forgets it.
func (ct *chanTimer) Stop() bool {
	c := ct.c
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.chans, ct)
	return ct.t.Stop()
}

// Reset re-arms the timer.
func (ct *chanTimer) Reset(d time.Duration) bool {
	c := ct.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chans[ct] = struct{}{}
	ct.at, ct.polls = c.FakeClock.Now().Add(d), 0
	return ct.t.Reset(d)
}

// Sleep blocks until d has passed on the clock, followed like NewTimer.
func (c *Clock) Sleep(d time.Duration) {
	t := c.NewTimer(d)
	<-t.Chan()
	t.Stop()
}

// ticker is a followed clockwork.Ticker: Step stops at each of its ticks.
type ticker struct {
	c     *Clock
	t     clockwork.Ticker
	start time.Time
	d     time.Duration
	polls int // as chanTimer's
}

// NewTicker is FakeClock.NewTicker, followed: Step stops at every tick and
// waits, as for a channel timer, until the tick has been received.
func (c *Clock) NewTicker(d time.Duration) clockwork.Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	tk := &ticker{c: c, t: c.FakeClock.NewTicker(d), start: c.FakeClock.Now(), d: d}
	c.tickers[tk] = struct{}{}
	return tk
}

// Chan is the ticker's channel.
func (tk *ticker) Chan() <-chan time.Time { return tk.t.Chan() }

// Reset changes the period; the next tick is d from now.
func (tk *ticker) Reset(d time.Duration) {
	c := tk.c
	c.mu.Lock()
	defer c.mu.Unlock()
	tk.t.Reset(d)
	tk.start, tk.d = c.FakeClock.Now(), d
	c.tickers[tk] = struct{}{}
}

// Stop stops the ticker.
func (tk *ticker) Stop() {
	c := tk.c
	c.mu.Lock()
	defer c.mu.Unlock()
	tk.t.Stop()
	delete(c.tickers, tk)
}

// Advance moves the clock forward by d at once, without waiting for
// anything: the FakeClock's own Advance, with the callbacks it fires
// followed. Tests normally use Step.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.FakeClock.Now().Add(d)
	for ft := range c.funcs {
		if ft.armed && !ft.at.After(end) {
			ft.armed = false
			delete(c.funcs, ft)
			c.inflight++
		}
	}
	c.FakeClock.Advance(d)
}

// next returns the earliest deadline of a followed timer, if any.
func (c *Clock) next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at time.Time
	found := false
	for ft := range c.funcs {
		if ft.armed && (!found || ft.at.Before(at)) {
			at, found = ft.at, true
		}
	}
	now := c.FakeClock.Now()
	for ct := range c.chans {
		if ct.at.After(now) && (!found || ct.at.Before(at)) {
			at, found = ct.at, true
		}
	}
	for tk := range c.tickers {
		if tk.d <= 0 {
			continue
		}
		tick := tk.start.Add((now.Sub(tk.start)/tk.d + 1) * tk.d)
		if !found || tick.Before(at) {
			at, found = tick, true
		}
	}
	return at, found
}

// busy names what keeps the clock from being at rest, or returns "".
// polling is true when the only reason is fired timers nobody has
// received yet: receiving sends no signal, so Settle polls for it.
func (c *Clock) busy() (why string, polling bool) {
	c.mu.Lock()
	inflight := c.inflight
	servers := append([]*Server(nil), c.servers...)
	fired := 0
	now := c.FakeClock.Now()
	for ct := range c.chans {
		if ct.at.After(now) {
			continue
		}
		if len(ct.t.Chan()) == 0 { // received (or stopped): nothing left to follow
			delete(c.chans, ct)
			continue
		}
		if ct.polls++; ct.polls > abandonAfter {
			delete(c.chans, ct)
			continue
		}
		fired++
	}
	for tk := range c.tickers {
		if len(tk.t.Chan()) == 0 {
			tk.polls = 0
			continue
		}
		if tk.polls++; tk.polls <= abandonAfter {
			fired++
		}
	}
	c.mu.Unlock()
	if inflight > 0 {
		return fmt.Sprintf("%d timer callbacks running", inflight), false
	}
	for _, s := range servers {
		if !s.atRest() {
			return "traffic in flight on the in-memory network", false
		}
	}
	if fired > 0 {
		return fmt.Sprintf("%d fired timers not received", fired), true
	}
	return "", false
}

// drain waits until every watched bus has delivered what was published
// so far, or ctx ends.
func (c *Clock) drain(ctx context.Context) error {
	c.mu.Lock()
	buses := append([]*events.Bus(nil), c.buses...)
	c.mu.Unlock()
	for _, b := range buses {
		if err := b.Wait(ctx); err != nil {
			return fmt.Errorf("tethertest: a bus subscriber is still busy: %w", err)
		}
	}
	return nil
}

// Settle waits until the code under test is at rest: no timer callback
// running, no fired timer waiting to be received, every reader of a
// watched Server's network waiting with nothing to read, and every
// watched bus drained. It sees nothing else, so a goroutine that works
// without timers, network or events (a handler computing, a reconnect hook
// waiting for an answer) is invisible to it.
func (c *Clock) Settle(ctx context.Context) error {
	for {
		if err := c.drain(ctx); err != nil {
			return err
		}
		why, polling := c.busy()
		if why == "" {
			// Confirm after letting runnable goroutines run: a goroutine
			// woken by the last change may not have touched anything yet.
			gen := c.generation()
			for range 10 {
				runtime.Gosched()
			}
			if again, _ := c.busy(); again == "" && c.generation() == gen {
				return nil
			}
			continue
		}
		if polling {
			runtime.Gosched()
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("tethertest: not at rest (%s): %w", why, err)
			}
			continue
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			return fmt.Errorf("tethertest: not at rest (%s): %w", why, ctx.Err())
		}
	}
}

// generation sums the change counters Settle watches.
func (c *Clock) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := uint64(c.inflight) + uint64(len(c.funcs))<<32
	for _, s := range c.servers {
		g += s.net.gen.Load()
	}
	return g
}

// settleHolding waits until the code is at rest with at least holders
// timers armed, both at once: a timer that was armed when the wait began
// may be gone once the code settles (a handshake's timeout, stopped when
// the handshake ended), and its successor not armed yet.
func (c *Clock) settleHolding(ctx context.Context, holders int) error {
	now, cancel := context.WithCancel(ctx)
	cancel()
	for {
		if holders > 0 {
			if err := c.BlockUntilContext(ctx, holders); err != nil {
				return fmt.Errorf("tethertest: waiting for %d timers at %v: %w", holders, c.Now(), err)
			}
		}
		if err := c.Settle(ctx); err != nil {
			return err
		}
		if holders <= 0 || c.BlockUntilContext(now, holders) == nil { // still held, without waiting
			return nil
		}
	}
}

// Step moves the clock forward by d, safely: before the first move it
// waits until at least holders timers are armed (the timers the code under
// test holds when it waits: 1 for a client with a heartbeat or waiting to
// reconnect) and until Settle says the code is at rest; it stops at every
// followed timer's deadline on the way, settling after each, so no timer
// fires late and no work that a timer callback starts is skipped over. It
// returns once the clock is d later and everything has settled again.
//
// A goroutine woken by a channel timer (NewTimer, After, Sleep, a ticker)
// is followed only until it receives; what it does next is invisible until
// it touches the network, a timer or a bus. tether's reconnect loop is one:
// during a backoff, step to its next timer and wait for its event before
// stepping on (docs/testing.md).
func (c *Clock) Step(ctx context.Context, d time.Duration, holders int) error {
	end := c.FakeClock.Now().Add(d)
	for first := true; ; first = false {
		// holders counts the timers the code holds when it waits; on the
		// way it may legitimately hold fewer (a client that gave up).
		if !first {
			holders = 0
		}
		if err := c.settleHolding(ctx, holders); err != nil {
			return err
		}
		now := c.FakeClock.Now()
		if !now.Before(end) {
			return nil
		}
		to := end
		if at, ok := c.next(); ok && at.After(now) && at.Before(end) {
			to = at
		}
		c.Advance(to.Sub(now))
		if !to.Before(end) {
			return c.Settle(ctx)
		}
	}
}
