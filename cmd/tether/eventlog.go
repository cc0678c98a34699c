package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// describe turns a lifecycle event into a short sentence and its fields,
// for the text and JSON outputs of connect and demo and for serve's log.
func describe(e events.Event) (string, map[string]any) {
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return oneLine(err.Error())
	}
	switch e := e.(type) {
	case events.Connected:
		return fmt.Sprintf("connected %s %s -> %s", e.ConnID, e.LocalAddr, e.RemoteAddr),
			map[string]any{"conn": e.ConnID, "local": e.LocalAddr, "remote": e.RemoteAddr, "client": e.Client}
	case events.Disconnected:
		var s string
		switch {
		case e.Code == ws.StatusAbnormalClosure:
			s = fmt.Sprintf("lost %s (1006, no close frame): %s", e.ConnID, errText(short(e.Err)))
		case e.Remote:
			s = fmt.Sprintf("closed %s by the peer: %d %q", e.ConnID, e.Code, e.Reason)
		default:
			s = fmt.Sprintf("closed %s: %d %q", e.ConnID, e.Code, e.Reason)
		}
		return s, map[string]any{"conn": e.ConnID, "code": int(e.Code), "reason": e.Reason, "remote": e.Remote, "err": errText(e.Err)}
	case events.Error:
		return fmt.Sprintf("error %s: %s", e.ConnID, errText(e.Err)),
			map[string]any{"conn": e.ConnID, "err": errText(e.Err), "fatal": e.Fatal}
	case heartbeat.PingSent:
		return fmt.Sprintf("ping #%d %s", e.Seq, e.ConnID), map[string]any{"conn": e.ConnID, "seq": e.Seq}
	case heartbeat.PongReceived:
		return fmt.Sprintf("pong #%d %s rtt %v", e.Seq, e.ConnID, e.RTT),
			map[string]any{"conn": e.ConnID, "seq": e.Seq, "rtt_ms": ms(e.RTT)}
	case heartbeat.PingMissed:
		return fmt.Sprintf("ping #%d %s unanswered (%d missed)", e.Seq, e.ConnID, e.Missed),
			map[string]any{"conn": e.ConnID, "seq": e.Seq, "missed": e.Missed}
	case heartbeat.Timeout:
		return fmt.Sprintf("dead peer detected on %s: %s", e.ConnID, errText(e.Err)),
			map[string]any{"conn": e.ConnID, "missed": e.Missed, "err": errText(e.Err)}
	case retry.Scheduled:
		return fmt.Sprintf("reconnect #%d in %v (%s)", e.Attempt, e.Delay, errText(short(e.Cause))),
			map[string]any{"client": e.ClientID, "attempt": e.Attempt, "delay_ms": ms(e.Delay), "cause": errText(e.Cause)}
	case retry.Dialing:
		return fmt.Sprintf("reconnect #%d dialing", e.Attempt), map[string]any{"client": e.ClientID, "attempt": e.Attempt}
	case retry.Reconnected:
		return fmt.Sprintf("reconnected %s after %d attempt(s), down %v", e.ConnID, e.Attempts, e.Downtime),
			map[string]any{"client": e.ClientID, "conn": e.ConnID, "attempts": e.Attempts, "downtime_ms": ms(e.Downtime)}
	case retry.GaveUp:
		return fmt.Sprintf("gave up after %d attempt(s): %s", e.Attempts, errText(short(e.LastErr))),
			map[string]any{"client": e.ClientID, "attempts": e.Attempts, "err": errText(e.LastErr)}
	}
	// An event of a type the command does not know (a plugin's): its
	// topic and what it is about.
	if src := e.Source(); src != "" {
		return e.Topic() + " " + src, map[string]any{"source": src}
	}
	return e.Topic(), map[string]any{}
}

// short drops the *core.CloseError wrapper of a lost connection's cause
// (its text repeats the code), keeping what actually happened.
func short(err error) error {
	var ce *core.CloseError
	if errors.As(err, &ce) && ce.Code == ws.StatusAbnormalClosure && ce.Err != nil {
		return ce.Err
	}
	return err
}

// busGrace bounds a wait for a bus to deliver what was published: its
// handlers only print, so this guards against a hang and is never reached.
const busGrace = 5 * time.Second

// drain waits until every event published so far on buses has been
// handed to its subscribers (printed), bounded by busGrace.
func drain(buses ...*events.Bus) {
	// wall time: a hang guard; delivering takes microseconds per event.
	ctx, cancel := context.WithTimeout(context.Background(), busGrace)
	defer cancel()
	for _, b := range buses {
		_ = b.Wait(ctx)
	}
}

// ms is a duration in milliseconds, with sub-millisecond precision.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// subscribeLifecycle subscribes fn to every event of bus but the
// per-message ones (events.MessageIn, MessageOut), a third party's
// included. Skipping those with events.Except keeps the connections from
// copying every message for a log that drops them. Events reach fn in
// order, on the bus's dispatcher goroutine.
func subscribeLifecycle(bus *events.Bus, fn func(events.Event)) (unsubscribe func(), err error) {
	return events.SubscribeAll(bus, fn, events.Except[events.MessageIn](), events.Except[events.MessageOut]())
}

// lineWriter writes one line per record, as text or as JSON, and is safe
// for concurrent use.
type lineWriter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	// stamp formats a record's time in text mode.
	stamp func(time.Time) string
	// start, if set, adds each record's elapsed_ms since start in JSON mode.
	start time.Time
}

// write writes one record: kind names it ("tether.connected", "message",
// "proxy", ...), text is the sentence, fields its JSON form.
func (l *lineWriter) write(t time.Time, who, kind, text string, fields map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.json {
		rec := map[string]any{"time": t.UTC().Format(time.RFC3339Nano), "event": kind}
		if who != "" {
			rec["who"] = who
		}
		if !l.start.IsZero() {
			rec["elapsed_ms"] = ms(t.Sub(l.start))
		}
		for k, v := range fields {
			rec[k] = v
		}
		b, err := json.Marshal(rec)
		if err != nil {
			b = []byte(fmt.Sprintf(`{"event":"error","err":%q}`, err.Error()))
		}
		fmt.Fprintf(l.w, "%s\n", b)
		return
	}
	if who != "" {
		fmt.Fprintf(l.w, "%s %-7s %s\n", l.stamp(t), who, text)
		return
	}
	fmt.Fprintf(l.w, "%s %s\n", l.stamp(t), text)
}

// event writes a lifecycle event.
func (l *lineWriter) event(who string, e events.Event) {
	text, fields := describe(e)
	l.write(e.Time(), who, e.Topic(), text, fields)
}
