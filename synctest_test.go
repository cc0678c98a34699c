package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
	"github.com/tetherws/tether/tethertest"
)

// The recipe's story once more, the testing/synctest way: tether runs on
// its default real clock, and inside the bubble the time package itself
// is fake and jumps ahead whenever every goroutine is blocked. There is no
// Advance and no fake clock; time.Sleep in the bubble takes no wall time.
// The events and their times are the same as on the fake clock.
func TestRecipeStoryInSynctestBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now() // the bubble's clock
		bus := events.NewBus()
		defer bus.Close()
		srv, err := tethertest.NewServer(tether.WithoutHeartbeat()) // the client's heartbeat finds the black hole, alone
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		rec, err := tethertest.NewRecorder(bus, start)
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Close()
		c, err := tether.Dial(context.Background(), srv.URL(), srv.DialOption(), tether.WithBus(bus),
			tether.WithClientID("k")) // the heartbeat is on by default
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ws.StatusNormalClosure, "")
		expect := func(want ...string) {
			t.Helper()
			synctest.Wait() // every goroutine of the bubble is blocked: all that can happen now has
			_ = bus.Wait(context.Background())
			if got := rec.Take(); !slices.Equal(got, want) {
				t.Fatalf("events:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
		}
		expect("@0s connected k.1 client")
		time.Sleep(95 * time.Second) // wall time: none, the synctest bubble fakes it; three pings answered
		var want []string
		for i, at := range []string{"30s", "1m0s", "1m30s"} {
			want = append(want, fmt.Sprintf("@%s heartbeat.sent k.1 #%d", at, i+1), fmt.Sprintf("@%s heartbeat.pong k.1 #%d rtt=0s", at, i+1))
		}
		expect(want...)
		srv.BlackHole(tethertest.Both)
		time.Sleep(35 * time.Second) // wall time: none (bubble); to 2m10s: the ping at 2m00s goes unanswered
		expect(
			"@2m0s heartbeat.sent k.1 #4",
			"@2m10s heartbeat.missed k.1 #4 missed=1",
			"@2m10s heartbeat.timeout k.1 missed=1",
			"@2m10s error k.1 fatal=true",
			"@2m10s disconnected k.1 1006 local",
			"@2m10s reconnect.scheduled k #1 in 1s",
		)
		srv.BlackHole(0)
		if err := srv.Refuse(http.StatusServiceUnavailable, -1); err != nil {
			t.Fatal(err)
		}
		<-c.Done() // blocks until the bubble's time has passed the whole backoff
		expect(
			"@2m11s reconnect.attempt k #1",
			"@2m11s reconnect.scheduled k #2 in 2s",
			"@2m13s reconnect.attempt k #2",
			"@2m13s reconnect.scheduled k #3 in 4s",
			"@2m17s reconnect.attempt k #3",
			"@2m17s reconnect.scheduled k #4 in 8s",
			"@2m25s reconnect.attempt k #4",
			"@2m25s reconnect.scheduled k #5 in 16s",
			"@2m41s reconnect.attempt k #5",
			"@2m41s reconnect.gaveup k after 5",
		)
		if !errors.Is(c.Err(), retry.ErrGaveUp) {
			t.Fatalf("Err() = %v, want ErrGaveUp", c.Err())
		}
		if got := time.Since(start); got != 2*time.Minute+41*time.Second {
			t.Fatalf("the bubble's time is %v after start, want 2m41s", got)
		}
	})
}
