package tethertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// Recorder subscribes to every event of a bus (events.SubscribeAll: the
// events of connections, of the heartbeat, of the reconnect plugin, and any
// third party's) and records them in the order the bus delivers them, so
// that a test can assert the exact sequence, with simulated timestamps.
// Lines renders them as short, deterministic lines ("@1m40s
// heartbeat.timeout k.2 missed=1").
type Recorder struct {
	start time.Time
	keep  func(events.Event) bool
	unsub func()

	mu     sync.Mutex
	events []events.Event
	taken  int           // events already returned by Take
	added  chan struct{} // closed and replaced on every event: wakes every waiter
}

// RecorderOption configures a Recorder.
type RecorderOption func(*Recorder)

// Keep records only the events for which keep returns true.
func Keep(keep func(events.Event) bool) RecorderOption {
	return func(r *Recorder) { r.keep = keep }
}

// Topics records only the events whose Topic is one of names (such as
// "tether.heartbeat.timeout").
func Topics(names ...string) RecorderOption {
	return Keep(func(e events.Event) bool { return slices.Contains(names, e.Topic()) })
}

// NewRecorder subscribes to every event of b. Timestamps in Lines are
// given as offsets from start. Subscribing to every event makes the bus
// publish every message (events.MessageIn, MessageOut), which costs a copy
// per message: subscribe to the types you need in a benchmark. Close
// unsubscribes.
func NewRecorder(b *events.Bus, start time.Time, opts ...RecorderOption) (*Recorder, error) {
	r := &Recorder{start: start, added: make(chan struct{}, 1)}
	for _, o := range opts {
		if o != nil {
			o(r)
		}
	}
	u, err := events.SubscribeAll(b, r.add)
	if err != nil {
		return nil, err
	}
	r.unsub = u
	return r, nil
}

func (r *Recorder) add(e events.Event) {
	if r.keep != nil && !r.keep(e) {
		return
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.added)
	r.added = make(chan struct{})
	r.mu.Unlock()
}

// Close unsubscribes the recorder. What it recorded stays readable.
func (r *Recorder) Close() {
	if r.unsub != nil {
		r.unsub()
	}
}

// Events returns every event recorded so far, in order.
func (r *Recorder) Events() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Lines returns every event recorded so far as a line; see Describe.
func (r *Recorder) Lines() []string {
	return r.describe(r.Events())
}

// Take returns, as lines, the events recorded since the previous Take.
func (r *Recorder) Take() []string {
	r.mu.Lock()
	evs := slices.Clone(r.events[r.taken:])
	r.taken = len(r.events)
	r.mu.Unlock()
	return r.describe(evs)
}

// TakeN waits until n events have been recorded since the previous Take
// or TakeN and returns those n as lines; later ones are left for the next
// call. Waiting for the events a step should have caused, rather than
// reading what has come so far, keeps a test exact on a busy machine.
func (r *Recorder) TakeN(ctx context.Context, n int) ([]string, error) {
	for {
		r.mu.Lock()
		if have := len(r.events) - r.taken; have >= n {
			evs := slices.Clone(r.events[r.taken : r.taken+n])
			r.taken += n
			r.mu.Unlock()
			return r.describe(evs), nil
		}
		got := r.describe(r.events[r.taken:])
		added := r.added
		r.mu.Unlock()
		select {
		case <-added:
		case <-ctx.Done():
			return got, fmt.Errorf("tethertest: %d of %d events recorded: %w", len(got), n, ctx.Err())
		}
	}
}

func (r *Recorder) describe(evs []events.Event) []string {
	lines := make([]string, len(evs))
	for i, e := range evs {
		lines[i] = Describe(e, r.start)
	}
	return lines
}

// WaitFor waits until an event for which match returns true has been
// recorded since the last Take or TakeN (already, or later), and returns
// the first such event. It takes nothing: the next Take still returns it.
func (r *Recorder) WaitFor(ctx context.Context, match func(events.Event) bool) (events.Event, error) {
	for {
		r.mu.Lock()
		for _, e := range r.events[r.taken:] {
			if match(e) {
				r.mu.Unlock()
				return e, nil
			}
		}
		n := len(r.events) - r.taken
		added := r.added
		r.mu.Unlock()
		select {
		case <-added:
		case <-ctx.Done():
			return nil, fmt.Errorf("tethertest: no matching event among %d recorded since the last take: %w", n, ctx.Err())
		}
	}
}

// Describe renders an event as one deterministic line: its time as an
// offset from start, its topic without the "tether." prefix, and the
// fields that identify it. Error values and payloads beyond 32 bytes are
// left out, so that a line can be compared with a literal. An event of a
// type this package does not know is rendered with its source alone.
func Describe(e events.Event, start time.Time) string {
	var what string
	switch e := e.(type) {
	case events.Connected:
		side := "server"
		if e.Client {
			side = "client"
		}
		what = fmt.Sprintf("%s %s", e.ConnID, side)
	case events.Disconnected:
		who := "local"
		if e.Remote {
			who = "remote"
		}
		what = fmt.Sprintf("%s %d %s", e.ConnID, e.Code, who)
	case events.MessageIn:
		what = fmt.Sprintf("%s %s", e.ConnID, payload(e.Payload))
	case events.MessageOut:
		what = fmt.Sprintf("%s %s", e.ConnID, payload(e.Payload))
	case events.Error:
		what = fmt.Sprintf("%s fatal=%t", e.ConnID, e.Fatal)
	case heartbeat.PingSent:
		what = fmt.Sprintf("%s #%d", e.ConnID, e.Seq)
	case heartbeat.PongReceived:
		what = fmt.Sprintf("%s #%d rtt=%v", e.ConnID, e.Seq, e.RTT)
	case heartbeat.PingMissed:
		what = fmt.Sprintf("%s #%d missed=%d", e.ConnID, e.Seq, e.Missed)
	case heartbeat.Timeout:
		what = fmt.Sprintf("%s missed=%d", e.ConnID, e.Missed)
	case retry.Scheduled:
		what = fmt.Sprintf("%s #%d in %v", e.ClientID, e.Attempt, e.Delay)
	case retry.Dialing:
		what = fmt.Sprintf("%s #%d", e.ClientID, e.Attempt)
	case retry.Reconnected:
		what = fmt.Sprintf("%s %s after %d down=%v", e.ClientID, e.ConnID, e.Attempts, e.Downtime)
	case retry.GaveUp:
		what = fmt.Sprintf("%s after %d", e.ClientID, e.Attempts)
	default:
		what = e.Source()
	}
	return fmt.Sprintf("@%v %s %s", e.Time().Sub(start), strings.TrimPrefix(e.Topic(), "tether."), what)
}

func payload(p []byte) string {
	if len(p) > 32 {
		return fmt.Sprintf("%q...(%d bytes)", p[:32], len(p))
	}
	return fmt.Sprintf("%q", p)
}
