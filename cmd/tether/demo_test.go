package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

type record map[string]any

func (r record) str(k string) string { s, _ := r[k].(string); return s }
func (r record) num(k string) float64 {
	f, _ := r[k].(float64)
	return f
}
func (r record) at() time.Duration {
	return time.Duration(r.num("elapsed_ms") * float64(time.Millisecond))
}

// timeline parses the demo's JSON lines.
func timeline(t *testing.T, out string) []record {
	t.Helper()
	var recs []record
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		recs = append(recs, r)
	}
	return recs
}

// cursor walks a timeline forward, finding events in order.
type cursor struct {
	t    *testing.T
	recs []record
	i    int
}

// find returns the next record of event kind from who ("" = anyone).
func (c *cursor) find(who, kind string) record {
	c.t.Helper()
	for ; c.i < len(c.recs); c.i++ {
		r := c.recs[c.i]
		if r.str("event") == kind && (who == "" || r.str("who") == who) {
			c.i++
			return r
		}
	}
	c.t.Fatalf("no %s %s after record %d", who, kind, c.i)
	return nil
}

// outage collects the client's scheduled delays until the outage ends
// with a reconnect or a give-up, which it returns.
func (c *cursor) outage() ([]time.Duration, record) {
	c.t.Helper()
	var delays []time.Duration
	for ; c.i < len(c.recs); c.i++ {
		r := c.recs[c.i]
		if r.str("who") != "client" {
			continue
		}
		switch r.str("event") {
		case "tether.reconnect.scheduled":
			delays = append(delays, time.Duration(r.num("delay_ms")*float64(time.Millisecond)))
		case "tether.reconnect.done", "tether.reconnect.gaveup":
			c.i++
			return delays, r
		}
	}
	c.t.Fatal("the outage never ended")
	return nil, nil
}

// The simulated demo runs the recipe's timings on a fake clock: this test
// reads the timeline it printed and checks each fault against the
// schedule the library promises (heartbeat defaults, retry.Default).
func TestDemoSimulatedFollowsTheRecipe(t *testing.T) {
	start := time.Now()
	code, stdout, stderr := runCLI(t, nil, "demo", "--simulated", "--json")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the timeline:\n%s", stdout)
		}
	})
	if code != exitOK {
		t.Fatalf("exit %d; stderr %s", code, stderr)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Logf("slow: %v for minutes of simulated time", elapsed) // informative only, never a timed assertion
	}
	var schedule []time.Duration // 1, 2, 4, 8, 16 s
	for a := 1; ; a++ {
		d, ok := retry.Default().Next(retry.Outage{Attempt: a})
		if !ok {
			break
		}
		schedule = append(schedule, d)
	}
	interval, timeout := heartbeat.DefaultInterval, heartbeat.DefaultTimeout
	c := &cursor{t: t, recs: timeline(t, stdout)}

	connected := c.find("client", "tether.connected").at()
	for i := 1; i <= 2; i++ { // answered pings, one interval apart
		if at := c.find("client", "tether.heartbeat.pong").at(); at != connected+time.Duration(i)*interval {
			t.Errorf("pong %d at %v, want %v", i, at, connected+time.Duration(i)*interval)
		}
	}

	// A drop is seen at once, and the client is back after the first delay.
	drop := c.find("proxy", "fault.drop").at()
	if lost := c.find("client", "tether.disconnected"); lost.num("code") != 1006 || lost.at() != drop {
		t.Errorf("after the drop at %v: %v", drop, lost)
	}
	delays, back := c.outage()
	if !slices.Equal(delays, schedule[:1]) || back.str("event") != "tether.reconnect.done" || back.at() != drop+schedule[0] {
		t.Errorf("after the drop: delays %v, then %v", delays, back)
	}

	// A black hole is found by the heartbeat only: the next ping one
	// interval after the connection opened, dead one pong timeout later.
	hole := c.find("proxy", "fault.blackhole").at()
	ping := c.find("client", "tether.heartbeat.sent").at()
	if ping != back.at()+interval {
		t.Errorf("first ping into the black hole at %v, want %v", ping, back.at()+interval)
	}
	dead := c.find("client", "tether.heartbeat.timeout")
	if dead.at() != ping+timeout || !strings.Contains(dead.str("err"), "did not answer") {
		t.Errorf("dead peer %v, want at %v", dead, ping+timeout)
	}
	if lost := c.find("client", "tether.disconnected"); lost.num("code") != 1006 {
		t.Errorf("after the timeout: %v", lost)
	}
	t.Logf("black hole at %v found after %v", hole, dead.at()-hole)
	if delays, back = c.outage(); !slices.Equal(delays, schedule[:1]) || back.str("event") != "tether.reconnect.done" {
		t.Errorf("after the black hole: delays %v, then %v", delays, back)
	}

	// Refused handshakes: the delays grow on the schedule until the server is back.
	refuse := c.find("proxy", "fault.refuse").at()
	delays, back = c.outage()
	if !slices.Equal(delays, schedule[:4]) || back.num("attempts") != 4 {
		t.Errorf("through the refusals: delays %v, then %v", delays, back)
	}
	var total time.Duration
	for _, d := range delays {
		total += d
	}
	if back.at() != refuse+total || time.Duration(back.num("downtime_ms")*float64(time.Millisecond)) != total {
		t.Errorf("back at %v after %v down, want %v", back.at(), back.num("downtime_ms"), refuse+total)
	}

	// The server stays away: the whole schedule, then a give-up.
	gone := c.find("proxy", "fault.gone").at()
	delays, end := c.outage()
	total = 0
	for _, d := range delays {
		total += d
	}
	if !slices.Equal(delays, schedule) || end.str("event") != "tether.reconnect.gaveup" ||
		end.num("attempts") != float64(len(schedule)) || end.at() != gone+total {
		t.Errorf("server gone at %v: delays %v, then %v", gone, delays, end)
	}

	// Every message is accounted for: delivered, lost with the black hole,
	// or handed back by Unsent.
	s := c.find("", "summary")
	lost, _ := s["lost"].([]any)
	unsent, _ := s["unsent"].([]any)
	if p, _ := s["problems"].([]any); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
	if s.num("sent") != s.num("delivered")+float64(len(lost)+len(unsent)) {
		t.Errorf("summary does not add up: %v", s)
	}
	// The message sent into the black hole is lost with it, or, when it
	// went into the queue because the previous reconnect's flush had not
	// finished yet, delivered after the next reconnect: both keep the
	// promise, and the summary says which.
	if len(lost) > 1 || len(unsent) == 0 || s.num("queued") == 0 || s.num("dead_peers") != 1 || s.num("reconnects") != 3 {
		t.Errorf("summary %v", s)
	}
}

func TestDemoSimulatedText(t *testing.T) {
	code, stdout, stderr := runCLI(t, nil, "demo", "--simulated")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, want := range []string{"dead peer detected", fmt.Sprintf("gave up after %d attempt(s)", retry.DefaultMaxAttempts), "summary", "returned by Unsent"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the timeline does not say %q", want)
		}
	}
}

// Ctrl-C during the demo ends it with exit 0, as with serve and connect.
func TestDemoInterruptExitsZero(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	out := newLines()
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"demo"}, strings.NewReader(""), out, out) }()
	out.await(t, "connected")
	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("exit %d after an interrupt: %s", c, out.String())
	}
}
