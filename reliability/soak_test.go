package reliability_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// soakDuration is how long the soak injects faults: 3 s, or 2 min in long
// mode; TETHER_SOAK (a Go duration) overrides both.
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("TETHER_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TETHER_SOAK=%q: %v", s, err)
		}
		return d
	}
	if long() {
		return 2 * time.Minute
	}
	return 3 * time.Second
}

// heapAfterGC returns the live heap once the garbage is collected.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The soak: 200 clients (20 in the quick version) through 4 proxies to one
// server, on the real clock (minutes of real traffic are the point), each
// sending 10 messages a second with the acks protocol, while random faults
// hit one proxy at a time (reset_peer, a black hole, 200 +/- 100 ms of
// latency, the slicer, 32 KB/s), and now and then the whole server dies and
// comes back. At the end every message accepted is delivered exactly once
// and in order, and once the clients are closed the goroutines and the live
// heap return to what they were before the clients started.
func TestSoak(t *testing.T) {
	nClients := scale(20, 200)
	dur := soakDuration(t)
	ignore := goleak.IgnoreCurrent()
	led := newLedger(acks, 16)
	srv := newServer(t, led)
	pxs := make([]*proxy, 4)
	for i := range pxs {
		pxs[i] = newProxy(t, srv.addr)
		pxs[i].strict = false // a fault that toxiproxy could not add is skipped, and counted
	}
	g0, px0 := goroutines()
	g0 -= px0 // tether's and the test's
	heap0 := heapAfterGC()

	policy, err := retry.New(
		retry.WithBackoff(must(retry.Exponential(50*time.Millisecond, 2, time.Second))),
		retry.WithJitter(retry.FullJitter),
		retry.WithMaxAttempts(retry.Unlimited))
	if err != nil {
		t.Fatal(err)
	}
	// wall time: a 1 s heartbeat and a 2 s handshake bound, so that black
	// holes are found and left within the soak's seconds.
	cfg := heartbeat.Config{Interval: time.Second, Timeout: time.Second}
	apps := make([]*app, nClients)
	stop := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard) // wall time: hang guard only
	defer cancel()
	for i := range apps {
		a := newApp(fmt.Sprintf("s%03d", i), acks, 16)
		a.window = 16
		c, err := tether.Dial(ctx, pxs[i%len(pxs)].url(), append(a.options(),
			tether.WithHeartbeat(cfg), tether.WithRetry(policy), tether.WithHandshakeTimeout(2*time.Second),
			tether.WithSendBuffer(64, 1<<20))...)
		if err != nil {
			t.Fatal(err)
		}
		a.c = c
		apps[i] = a
		tick := time.NewTicker(100 * time.Millisecond) // wall time: a soak paces its senders on real time
		defer tick.Stop()
		go a.send(stop, tick.C)
	}

	// Faults, one at a time, until the time is up.
	seed := uint64(time.Now().UnixNano()) // wall time: a seed, logged
	rnd := rand.New(rand.NewPCG(seed, 1))
	faults := map[string]int{}
	toxics := []struct {
		name, typ string
		attrs     map[string]any
	}{
		{"reset_peer", "reset_peer", map[string]any{"timeout": 0}},
		{"black hole", "timeout", map[string]any{"timeout": 0}},
		{"latency", "latency", map[string]any{"latency": 200, "jitter": 100}},
		{"slicer", "slicer", map[string]any{"average_size": 3, "size_variation": 2, "delay": 10}},
		{"bandwidth", "bandwidth", map[string]any{"rate": 32}},
	}
	var peakHeap uint64
	peakG, peakPx := 0, 0
	end := time.Now().Add(dur)   // wall time: the soak's length
	for time.Now().Before(end) { // wall time: the soak's length
		hold := time.Duration(100+rnd.IntN(700)) * time.Millisecond
		if rnd.IntN(10) == 0 {
			faults["server killed"]++
			srv.kill()
			<-time.After(hold) // wall time: the server stays down a while
			srv.restart()
		} else {
			tx := toxics[rnd.IntN(len(toxics))]
			px := pxs[rnd.IntN(len(pxs))]
			faults[tx.name]++
			px.both("soak", tx.typ, tx.attrs)
			<-time.After(hold) // wall time: the fault lasts a while
			px.removeBoth("soak")
		}
		if g, gpx := goroutines(); g > peakG {
			peakG, peakPx = g, gpx
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapAlloc)
	}

	// Everything accepted arrives.
	close(stop)
	var accepted, delivered, lost, resent, dups, full, reconnects int64
	for _, a := range apps {
		<-a.done
		if err := a.stopErr(); err != nil {
			t.Fatalf("%s: the sender stopped: %v", a.id, err)
		}
	}
	for _, a := range apps {
		a.sendOne(t) // the seq the sender may have left refused
		a.settle(t)
	}
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Everything was acknowledged: nothing may be left unsent,
			// and the close handshake may fail only because the link is
			// going (the server is not killed now, the proxies have no
			// toxic), which it must not either.
			if err := a.c.Shutdown(guarded(t), ws.StatusNormalClosure, "bye"); err != nil {
				t.Errorf("%s: Shutdown = %v", a.id, err)
			}
		}()
	}
	wg.Wait()
	for _, a := range apps {
		lost += a.check(t, led, a.c.Unsent()) // fails the test unless 0 (acks mode)
		acc := led.get(a.id)
		accepted += a.sentHi.Load()
		resent += a.resent.Load()
		dups += acc.dups
		delivered += int64(len(acc.delivered))
		full += a.full.Load()
		reconnects += a.reconnects.Load()
	}

	// Back to the baseline: the server and the proxies still run, the
	// clients are gone, and so are the test's own records.
	// Goroutines of closed sockets wind down; toxiproxy's own leftovers
	// (see toxiproxyOwn) are counted apart.
	apps = nil
	led.forget()
	var g1, px1 int
	guard := time.After(hangGuard) // wall time: hang guard only
	for g1, px1 = goroutines(); g1-px1 > g0; g1, px1 = goroutines() {
		select {
		case <-time.After(10 * time.Millisecond): // wall time: goroutines of closed sockets wind down
		case <-guard:
			t.Fatalf("goroutines: %d (%d of toxiproxy's) after the clients closed, %d before", g1, px1, g0)
		}
	}
	heap1 := heapAfterGC()
	// The slack: 4 MiB, plus 64 KiB for each goroutine toxiproxy left
	// behind (a blocked link holds its 32 KiB copy buffer and a chunk).
	// A leak of tether's own per connection (about 10 KiB a connection:
	// buffers, state) over the soak's reconnects would exceed it.
	slack := uint64(4<<20 + 64<<10*max(px1-px0, 0))
	if heap1 > heap0+slack {
		t.Errorf("live heap %d KiB after the soak, %d KiB before (slack %d KiB)", heap1>>10, heap0>>10, slack>>10)
	}

	for _, px := range pxs {
		if n := px.replaced.Load(); n > 0 {
			faults["proxy replaced after a toxiproxy deadlock"] += int(n)
		}
	}
	kinds := make([]string, 0, len(faults))
	for k, n := range faults {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("soak: %d clients, %v, seed %d, faults [%s]; accepted %d, delivered exactly once and in order %d, lost %d, "+
		"resent %d (server dropped %d duplicates), buffer-full refusals %d, reconnects %d; "+
		"goroutines without toxiproxy's %d before, %d after; all goroutines at peak %d (%d of them toxiproxy's); "+
		"toxiproxy's own %d before (with what earlier tests' proxies left, some of which end meanwhile), %d after; "+
		"live heap %d KiB before, peak %d KiB, %d KiB after (allowed %d KiB)",
		nClients, dur, seed, strings.Join(kinds, ", "), accepted, delivered, lost, resent, dups, full, reconnects,
		g0, g1-px1, peakG, peakPx, px0, px1, heap0>>10, peakHeap>>10, heap1>>10, (heap0+slack)>>10)

	for _, px := range pxs {
		px.stop()
	}
	srv.kill()
	verifyNone(t, ignore)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
