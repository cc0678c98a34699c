package bench

import (
	"context"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/retry"
)

// BenchmarkReconnect_Dial: what a reconnect costs the client: one dial and
// opening handshake over loopback to the same raw gobwas/ws server, then
// the connection is dropped. allocs/op is the figure to compare; ns/op is
// dominated by the loopback handshake.
func BenchmarkReconnect_Dial(b *testing.B) {
	dials := []struct {
		name string
		dial func(ctx context.Context, url string) error
	}{
		{nRaw, func(ctx context.Context, url string) error {
			nc, _, _, err := ws.Dial(ctx, url)
			if err == nil {
				err = nc.Close()
			}
			return err
		}},
		{nGorilla, func(ctx context.Context, url string) error {
			c, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
			if err == nil {
				err = c.NetConn().Close()
			}
			return err
		}},
		{nCoder, func(ctx context.Context, url string) error {
			c, _, err := coder.Dial(ctx, url, nil)
			if err == nil {
				err = c.CloseNow()
			}
			return err
		}},
		{nGws, func(ctx context.Context, url string) error {
			c, _, err := gws.NewClient(&gwsEcho{}, &gws.ClientOption{Addr: url})
			if err == nil {
				err = c.NetConn().Close()
			}
			return err
		}},
		{nTether + "-core", func(ctx context.Context, url string) error {
			_, err := core.Dial(ctx, url, coreDrop)
			if err == nil {
				err = dropped.Abort(nil)
			}
			return err
		}},
	}
	s := startServer(b, rawGobwasPeer(false))
	defer s.stop()
	url := "ws://" + s.addr + "/"
	ctx := context.Background()
	for _, d := range dials {
		b.Run("peer="+d.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if err := d.dial(ctx, url); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, b.N)
		})
	}
	b.Run("peer="+nTether+"-client", func(b *testing.B) { // Dial, the client's goroutines, Shutdown
		b.ReportAllocs()
		// One bound for the whole run: a ctx per op would count in allocs/op.
		bound, cancel := context.WithTimeout(ctx, 5*time.Minute) // wall time: hang guard only
		defer cancel()
		cpu := startCPU()
		for b.Loop() {
			// No heartbeat, as when it was off by default: what a dial
			// costs; the heartbeat's cost is Liveness_ and Heartbeat_'s.
			c, err := tether.Dial(ctx, url, tether.WithoutHeartbeat())
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Shutdown(bound, ws.StatusNormalClosure, ""); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, b.N)
	})
}

// dropped is the handle of the connection core.Dial just made with
// coreDrop: aborting it drops the connection without a close frame, as
// the other peers do (Abort is a plugin's operation).
var (
	dropped  *core.Handle
	coreDrop = core.Config{Plugins: []core.Plugin{core.PluginFunc(func(h *core.Handle) error { dropped = h; return nil })}}
)

// BenchmarkRetry_PolicyNext: the delay before the next attempt, with the
// default policy (exponential 1 s x2, full jitter, 5 attempts).
func BenchmarkRetry_PolicyNext(b *testing.B) {
	p := retry.Default()
	var sink time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		d, _ := p.Next(retry.Outage{Attempt: i%5 + 1, Prev: sink, Elapsed: time.Duration(i) * time.Millisecond})
		sink = d
	}
}
