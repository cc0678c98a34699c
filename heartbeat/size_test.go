package heartbeat

import (
	"testing"
	"unsafe"
)

// The per-connection state stays small: the budget is about 200
// bytes of heartbeat state per connection, timer object aside
// (BenchmarkIdle measures everything the heartbeat adds).
func TestStateSize(t *testing.T) {
	if n := unsafe.Sizeof(state{}); unsafe.Sizeof(uintptr(0)) == 8 && n > 104 {
		t.Fatalf("state is %d bytes", n)
	}
}
