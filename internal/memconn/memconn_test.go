package memconn_test

import (
	"bufio"
	"io"
	"testing"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/tetherws/tether/internal/memconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Frames serves the prefix, then exactly n whole frames, then io.EOF.
func TestFramesServesPrefixThenFrames(t *testing.T) {
	for _, batch := range []int{1, 3, 64} {
		m := memconn.NewFrames([]byte("HELLO"), 300, 5, batch)
		br := bufio.NewReaderSize(m, 256) // smaller than a frame: short reads
		p := make([]byte, 5)
		if _, err := io.ReadFull(br, p); err != nil || string(p) != "HELLO" {
			t.Fatalf("prefix %q, %v", p, err)
		}
		for i := range 5 {
			f, err := ws.ReadFrame(br)
			if err != nil || f.Header.Length != 300 || !f.Header.Masked || f.Header.OpCode != ws.OpBinary {
				t.Fatalf("batch %d frame %d: %+v, %v", batch, i, f.Header, err)
			}
		}
		if _, err := ws.ReadFrame(br); err != io.EOF {
			t.Fatalf("after the last frame: %v", err)
		}
		if n, _ := m.Write([]byte("abc")); n != 3 || m.Writes() != 1 || m.Written() != 3 {
			t.Fatal("Write accounting")
		}
	}
}
