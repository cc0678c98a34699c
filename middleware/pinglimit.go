package middleware

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
)

// PingLimit returns a plugin (core.Config.Plugins, tether.WithPlugin) that
// closes a connection with 1008 (policy violation, reason "ping flood")
// once its peer sent more than max pings within one window of per, on the
// connection's clock. Without it a ping flood is answered ping for pong:
// RFC 6455 asks for it, memory stays flat (pongs go through the one writer,
// with no queue) and a peer that stops reading its pongs only blocks its
// own connection; PingLimit is for servers that would rather not spend a
// write per ping on such a peer.
//
// Pings are counted with one atomic add each, and the count is reset by
// one timer per connection that re-arms itself every per: no clock read
// per frame. Data frames and pongs are not counted. The ping that crosses
// the limit is not answered. The windows are fixed, not sliding: a peer
// can send max pings at the end of one window and max more at the start of
// the next, so the burst it can get answered is 2*max. max and per must be
// positive.
func PingLimit(max int, per time.Duration) (core.Plugin, error) {
	if max <= 0 || per <= 0 {
		return nil, fmt.Errorf("%w: PingLimit(%d, %v): both must be positive", core.ErrInvalidConfig, max, per)
	}
	return &pingLimit{max: int64(max), per: per}, nil
}

type pingLimit struct {
	max int64
	per time.Duration
}

var _ core.Plugin = (*pingLimit)(nil)

// Attach counts the connection's pings until it closes.
func (p *pingLimit) Attach(h *core.Handle) error {
	var (
		count   atomic.Int64
		mu      sync.Mutex // guards t and stopped against the timer's own goroutine
		t       clockwork.Timer
		stopped bool
	)
	mu.Lock()
	t = h.Clock().AfterFunc(p.per, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		count.Store(0)
		t.Reset(p.per)
	})
	mu.Unlock()
	stop := func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
	if err := h.OnClose(stop); err != nil {
		stop()
		return err
	}
	return h.OnControl(func(op ws.OpCode, _ []byte) {
		if op == ws.OpPing && count.Add(1) == p.max+1 {
			_ = h.Conn().Close(ws.StatusPolicyViolation, "ping flood") // returns at once
		}
	})
}
