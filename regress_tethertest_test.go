package tether_test

// Regression tests from a review of tethertest: each comment names the bug
// the test guards against (fixed since).

import (
	"net/http"
	"testing"
	"time"

	"github.com/tetherws/tether/tethertest"
)

// R8: Step's holders is enforced at every stop on the way, so a Step that
// crosses the moment the client legitimately holds fewer timers (here: it
// gives up) never returns.
func TestRegressStepAcrossGiveUpHangs(t *testing.T) {
	s := newStory(t)
	s.step(0, 1)
	s.expect("@0s connected k.1 client")
	if err := s.srv.Refuse(http.StatusServiceUnavailable, -1); err != nil {
		t.Fatal(err)
	}
	s.srv.BlackHole(tethertest.Both)
	// Heartbeat timeout at 40 s, then 1+2+4+8+16 s of backoff: all over by 71 s.
	if err := s.clock.Step(s.ctx, 5*time.Minute, 1); err != nil {
		t.Fatalf("Step(5m, 1) across the give-up: %v (clock at %v)", err, s.clock.Since(t0))
	}
}

// R15: the existing TestRecoveryResetsTheCounterOnFakeClock flow after a
// server-initiated close, repeated.
func TestRegressStepAfterCloseAll(t *testing.T) {
	bad := 0
	const n = 300
	for range n {
		t.Run("", func(t *testing.T) {
			s := newStory(t)
			s.step(0, 1)
			s.expect("@0s connected k.1 client")
			s.srv.CloseAll(1001, "restart")
			s.step(0, 1)
			s.expect("@0s disconnected k.1 1001 remote", "@0s reconnect.scheduled k #1 in 1s")
			s.step(time.Second, 1)
			got, err := s.rec.TakeN(s.ctx, 1)
			if err != nil || got[0] != "@1s reconnect.attempt k #1" {
				bad++
				t.Logf("%q %v", got, err)
			}
		})
	}
	if bad > 0 {
		t.Fatalf("%d of %d", bad, n)
	}
}
