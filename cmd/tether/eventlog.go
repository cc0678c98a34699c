package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
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
	case events.HeartbeatSent:
		return fmt.Sprintf("ping #%d %s", e.Seq, e.ConnID), map[string]any{"conn": e.ConnID, "seq": e.Seq}
	case events.PongReceived:
		return fmt.Sprintf("pong #%d %s rtt %v", e.Seq, e.ConnID, e.RTT),
			map[string]any{"conn": e.ConnID, "seq": e.Seq, "rtt_ms": ms(e.RTT)}
	case events.HeartbeatMissed:
		return fmt.Sprintf("ping #%d %s unanswered (%d missed)", e.Seq, e.ConnID, e.Missed),
			map[string]any{"conn": e.ConnID, "seq": e.Seq, "missed": e.Missed}
	case events.HeartbeatTimeout:
		return fmt.Sprintf("dead peer detected on %s: %s", e.ConnID, errText(e.Err)),
			map[string]any{"conn": e.ConnID, "missed": e.Missed, "err": errText(e.Err)}
	case events.ReconnectScheduled:
		return fmt.Sprintf("reconnect #%d in %v (%s)", e.Attempt, e.Delay, errText(short(e.Cause))),
			map[string]any{"client": e.ClientID, "attempt": e.Attempt, "delay_ms": ms(e.Delay), "cause": errText(e.Cause)}
	case events.ReconnectAttempt:
		return fmt.Sprintf("reconnect #%d dialing", e.Attempt), map[string]any{"client": e.ClientID, "attempt": e.Attempt}
	case events.Reconnected:
		return fmt.Sprintf("reconnected %s after %d attempt(s), down %v", e.ConnID, e.Attempts, e.Downtime),
			map[string]any{"client": e.ClientID, "conn": e.ConnID, "attempts": e.Attempts, "downtime_ms": ms(e.Downtime)}
	case events.GaveUp:
		return fmt.Sprintf("gave up after %d attempt(s): %s", e.Attempts, errText(short(e.LastErr))),
			map[string]any{"client": e.ClientID, "attempts": e.Attempts, "err": errText(e.LastErr)}
	}
	return e.Topic().String(), map[string]any{}
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

// at returns an event's timestamp.
func at(e events.Event) time.Time {
	switch e := e.(type) {
	case events.Connected:
		return e.At
	case events.Disconnected:
		return e.At
	case events.Error:
		return e.At
	case events.HeartbeatSent:
		return e.At
	case events.PongReceived:
		return e.At
	case events.HeartbeatMissed:
		return e.At
	case events.HeartbeatTimeout:
		return e.At
	case events.ReconnectScheduled:
		return e.At
	case events.ReconnectAttempt:
		return e.At
	case events.Reconnected:
		return e.At
	case events.GaveUp:
		return e.At
	}
	return time.Time{}
}

// ms is a duration in milliseconds, with sub-millisecond precision.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// subscribeLifecycle subscribes fn to every lifecycle topic of bus (all
// but the per-message ones). The events of one topic and of one connection
// reach fn in order, on the bus's dispatcher goroutine.
func subscribeLifecycle(bus *events.Bus, fn func(events.Event)) (unsubscribe func(), err error) {
	var unsubs []func()
	add := func(u func(), err error) error {
		if err == nil {
			unsubs = append(unsubs, u)
		}
		return err
	}
	for _, err := range []error{
		add(events.Subscribe(bus, func(e events.Connected) { fn(e) })),
		add(events.Subscribe(bus, func(e events.Disconnected) { fn(e) })),
		add(events.Subscribe(bus, func(e events.Error) { fn(e) })),
		add(events.Subscribe(bus, func(e events.HeartbeatSent) { fn(e) })),
		add(events.Subscribe(bus, func(e events.PongReceived) { fn(e) })),
		add(events.Subscribe(bus, func(e events.HeartbeatMissed) { fn(e) })),
		add(events.Subscribe(bus, func(e events.HeartbeatTimeout) { fn(e) })),
		add(events.Subscribe(bus, func(e events.ReconnectScheduled) { fn(e) })),
		add(events.Subscribe(bus, func(e events.ReconnectAttempt) { fn(e) })),
		add(events.Subscribe(bus, func(e events.Reconnected) { fn(e) })),
		add(events.Subscribe(bus, func(e events.GaveUp) { fn(e) })),
	} {
		if err != nil {
			for _, u := range unsubs {
				u()
			}
			return nil, err
		}
	}
	return func() {
		for _, u := range unsubs {
			u()
		}
	}, nil
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
	l.write(at(e), who, e.Topic().String(), text, fields)
}
