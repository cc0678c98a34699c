package heartbeat

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/internal/memconn"
)

// The per-connection state is the size its doc comment says, on 64-bit
// platforms: a change either way shows here, and the comment follows.
func TestStateSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the figure is for 64-bit platforms")
	}
	if n := unsafe.Sizeof(state{}); n != 104 {
		t.Fatalf("state is %d bytes; the comment on state says 104", n)
	}
}

// The state is not all a heartbeat costs a connection. What attaching one
// adds, measured against the same connection without it, real clock: the
// state (112 B in its size class), the clock's timer, the method values
// handed to AfterFunc, OnControl and OnClose, and the entries of the
// connection's value, control-hook and close-hook slices: 8 allocations
// (Go 1.26, amd64), a count that does not vary, bounded at 9. The bytes,
// about 370, vary from run to run by the amortised growth of the runtime's
// timer heap (262 to 514 B seen under -race): their bound is loose, a
// guard against doubling. BenchmarkIdle measures the same on 10,000 live
// connections.
func TestAttachCost(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the figures are for 64-bit platforms")
	}
	hb, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	conns := make([]*core.Conn, 0, n) // kept, so that the heap does not reuse their memory mid-run
	measure := func(plugins []core.Plugin) (bytes, allocs float64) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range n {
			up := &core.Upgrader{Config: core.Config{Plugins: plugins}}
			c, err := up.Accept(memconn.NewFrames(memconn.UpgradeRequest, 16, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / n, float64(after.Mallocs-before.Mallocs) / n
	}
	bareBytes, bareAllocs := measure(nil)
	hbBytes, hbAllocs := measure([]core.Plugin{hb})
	for _, c := range conns {
		_ = c.Close(1000, "") // not served: Close releases the socket and the timers
		<-c.Done()
	}
	addBytes, addAllocs := hbBytes-bareBytes, hbAllocs-bareAllocs
	t.Logf("a heartbeat adds %.0f B and %.1f allocations to a connection of %.0f B, %.1f allocations", addBytes, addAllocs, bareBytes, bareAllocs)
	if addAllocs > 9 || addBytes > 700 {
		t.Fatalf("a heartbeat adds %.1f allocations and %.0f B per connection; budget 9 and 700 B", addAllocs, addBytes)
	}
}
