package tethertest_test

// Regression tests from a review of tethertest: each comment names the bug
// the test guards against (fixed since).

import (
	"context"
	"testing"
	"time"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/tethertest"
)

// R2 end to end: a client gives up on a handshake by closing its
// transport; Settle returns, yet the server has not yet counted the
// failed handshake (commit 1230ac0 says Stats is then exact).
func TestRegressSettleBeforeEOFSeen(t *testing.T) {
	ctx := testCtx(t)
	bad := 0
	const n = 300
	for range n {
		clock := tethertest.NewClock(t0)
		srv, err := tethertest.NewServer(tether.WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		nc, err := srv.DialContext(ctx, "tcp", "x")
		if err != nil {
			t.Fatal(err)
		}
		rd := make(chan struct{})
		go func() { defer close(rd); _, _ = nc.Read(make([]byte, 1)) }()
		if err := clock.Settle(ctx); err != nil { // the server waits for the request
			t.Fatal(err)
		}
		nc.Close()
		if err := clock.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		if st := srv.Stats(); st.Failed != 1 {
			bad++
		}
		srv.Close()
		<-rd
	}
	if bad > 0 {
		t.Fatalf("%d of %d: Settle returned before the server saw EOF and counted the failed handshake", bad, n)
	}
	_ = time.Second
	_ = context.Background
}
