package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The idle benchmark re-executes this test binary as one peer's server, so
// that each library's memory is measured in a process of its own.
const (
	idleEnv = "TETHER_BENCH_IDLE_PEER"
	idleN   = 2000

	// The server pings every idleEvery and measures after idleRounds
	// intervals: the steady state of an idle connection, which has been
	// through heartbeat rounds, not only its first moments.
	idleEvery  = 500 * time.Millisecond
	idleRounds = 3

	// idleProfileEnv names a file for the child's heap profile, taken when
	// it measures: TETHER_BENCH_IDLE_HEAPPROFILE=/tmp/h.prof.
	idleProfileEnv = "TETHER_BENCH_IDLE_HEAPPROFILE"
)

// BenchmarkIdle_PerConn: the Go memory (live heap after GC plus goroutine
// stacks, also reported apart) and goroutines a server holds per idle
// connection with its heartbeat on, for idleN connections over loopback.
// Each connection echoed one message, then idles; its client answers pings.
// Measured after idleRounds heartbeat intervals. The clients live in the benchmark's
// process, the server in a child process of its own. Run with
// -benchtime 1x: one measurement per run.
func BenchmarkIdle_PerConn(b *testing.B) {
	for _, name := range []string{nRaw, nGorilla, nCoder, nGws, nTether} {
		b.Run("peer="+name, func(b *testing.B) {
			var r idleResult
			for range b.N {
				var err error
				if r, err = measureIdle(name, idleN); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.heap+r.stack, "B/conn")
			b.ReportMetric(r.heap, "heap-B/conn")
			b.ReportMetric(r.stack, "stack-B/conn")
			b.ReportMetric(r.goroutines, "goroutines/conn")
		})
	}
}

// idleResult is what the child measured, per connection.
type idleResult struct{ heap, stack, goroutines float64 }

func measureIdle(name string, n int) (res idleResult, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), idleEnv+"="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = stdin.Close()
		if werr := cmd.Wait(); err == nil && werr != nil {
			err = werr
		}
	}()
	out := bufio.NewScanner(stdout)
	var addr string
	if !out.Scan() || !strings.HasPrefix(out.Text(), "ADDR ") {
		return res, fmt.Errorf("child: no address: %q", out.Text())
	}
	addr = strings.TrimPrefix(out.Text(), "ADDR ")
	clients := make([]*client, 0, n)
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for range n {
		c, err := dialClient(context.Background(), addr, false, 16)
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
		if err := c.echo(); err != nil { // the server's loop runs: the connection is set up
			return res, err
		}
		go c.answerPings()
	}
	if _, err := io.WriteString(stdin, "MEASURE "+strconv.Itoa(n)+"\n"); err != nil {
		return res, err
	}
	if !out.Scan() {
		return res, fmt.Errorf("child: no result")
	}
	if _, err := fmt.Sscanf(out.Text(), "RESULT %g %g %g", &res.heap, &res.stack, &res.goroutines); err != nil {
		return res, fmt.Errorf("child: %q: %w", out.Text(), err)
	}
	return res, nil
}

// idleChild is the server process: it serves one peer with its heartbeat
// on, prints its address, and on "MEASURE n" prints the memory and
// goroutines per connection above its baseline. It exits when stdin closes.
func idleChild() int {
	pingEvery = idleEvery
	p, ok := peerNamed(os.Getenv(idleEnv), true)
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown peer", os.Getenv(idleEnv))
		return 2
	}
	heap0, stack0, g0 := idleSnapshot()
	s := startServer(childTB{}, p)
	fmt.Printf("ADDR %s\n", s.addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n int
		if _, err := fmt.Sscanf(in.Text(), "MEASURE %d", &n); err != nil || n <= 0 {
			fmt.Fprintln(os.Stderr, "bad command", in.Text())
			return 2
		}
		time.Sleep(idleRounds * idleEvery) // wall time: real heartbeats over real sockets
		heap, stack, g := idleSnapshot()
		if path := os.Getenv(idleProfileEnv); path != "" { // for pprof: what the idle connections hold
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
		}
		per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(n) }
		fmt.Printf("RESULT %.0f %.0f %.3f\n", per(heap, heap0), per(stack, stack0), float64(g-g0)/float64(n))
	}
	return 0 // the process exits: its connections and goroutines go with it
}

func idleSnapshot() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}

// childTB lets startServer run outside a test: any failure ends the child.
type childTB struct{ testing.TB }

func (childTB) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(2)
}
