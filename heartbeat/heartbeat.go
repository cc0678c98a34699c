package heartbeat

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/core"
)

// Heartbeat is the plugin. One value serves any number of connections,
// each with its own state; it is safe for concurrent use and immutable.
type Heartbeat struct {
	cfg      Config
	classify func(ws.OpCode, []byte) Kind
}

var _ core.Plugin = (*Heartbeat)(nil)

// New returns a heartbeat plugin configured by cfg, or an error matching
// core.ErrInvalidConfig that says which field is wrong.
func New(cfg Config) (*Heartbeat, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Heartbeat{cfg: cfg}
	if cfg.Mode == Text {
		h.classify = classifier(cfg)
	}
	return h, nil
}

// Config returns the configuration in use, defaults filled in (the zero
// Config for a nil Heartbeat).
func (h *Heartbeat) Config() Config {
	if h == nil {
		return Config{}
	}
	return h.cfg
}

// Attach implements core.Plugin: it arms the connection's heartbeat timer
// and, in text mode, installs the inbound filter that consumes heartbeat
// messages. It returns at once.
func (h *Heartbeat) Attach(c *core.Handle) error {
	if h == nil || c == nil {
		return fmt.Errorf("%w: nil heartbeat or handle", errConfig)
	}
	if h.cfg.Interval <= 0 || h.cfg.Timeout <= 0 {
		return fmt.Errorf("%w: a Heartbeat must be made by New", errConfig)
	}
	s := &state{h: h, c: c}
	var err error
	if h.cfg.Mode == Text {
		err = c.UseInbound(s.inbound)
	} else {
		err = c.OnControl(s.control)
	}
	if err != nil {
		return err
	}
	if h.cfg.AnyFrame { // only then does the frame path pay for a counter
		if err := c.CountFrames(); err != nil {
			return err
		}
	}
	if err := c.SetValue(stateKey{}, s); err != nil {
		return err
	}
	s.mu.Lock()
	s.lastAct = c.Activity()
	s.timer = c.Clock().AfterFunc(h.cfg.Interval, s.tick)
	s.mu.Unlock()
	// OnClose costs a slice entry; a context per connection would cost a
	// few hundred bytes.
	return c.OnClose(s.stop)
}

type stateKey struct{}

// Stats is a snapshot of one connection's heartbeat.
type Stats struct {
	Sent     uint64        // pings sent
	Answered uint64        // pings answered in time
	Missed   int           // consecutive pings missed so far
	RTT      time.Duration // round-trip time of the latest answered ping; 0 if none
}

// StatsOf returns the heartbeat's counters for c, and false if c runs no
// heartbeat.
func StatsOf(c *core.Conn) (Stats, bool) {
	if c == nil {
		return Stats{}, false
	}
	s, _ := c.Value(stateKey{}).(*state)
	if s == nil {
		return Stats{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Sent: s.seq, Answered: s.pongs, Missed: int(s.missed), RTT: s.rtt}, true
}

// state is one connection's heartbeat. The timer is its only activity: it
// fires either when the next ping is due (awaiting false) or when the
// outstanding ping's timeout passed (awaiting true), and only the timer's
// callback re-arms it, so two callbacks never race for one step.
//
// It is kept small (104 bytes on 64-bit platforms, TestStateSize): one per
// connection.
type state struct {
	h        *Heartbeat
	c        *core.Handle
	timer    clockwork.Timer
	sentAt   time.Time     // when the outstanding ping was sent
	rtt      time.Duration // of the latest answered ping
	seq      uint64        // pings sent
	pongs    uint64        // pings answered
	lastAct  uint64        // c.Activity() at the last check
	missed   int32         // consecutive misses
	mu       sync.Mutex
	stopped  bool // the connection started closing
	awaiting bool // a ping is outstanding
	answered bool // the outstanding ping was answered
}

func (s *state) stop() {
	s.mu.Lock()
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
}

// tick is the timer's callback.
func (s *state) tick() {
	cfg := &s.h.cfg
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if s.awaiting {
		// The outstanding ping's timeout passed.
		s.awaiting = false
		act := s.c.Activity()
		spoke := cfg.AnyFrame && act != s.lastAct
		alive := s.answered || spoke
		s.lastAct = act
		if alive {
			s.missed = 0
		} else {
			s.missed++
			seq, missed := s.seq, int(s.missed)
			core.Emit(s.c, PingMissed{ConnID: s.c.Conn().ID(), Seq: seq, Missed: missed, At: s.c.Clock().Now()})
			if missed > cfg.MaxMissed {
				s.stopped = true
				s.mu.Unlock()
				s.timeout(missed)
				return
			}
		}
		rest := cfg.Interval - cfg.Timeout
		if rest == 0 && spoke {
			rest = cfg.Interval // the peer spoke during the interval: no ping needed
		}
		if rest > 0 {
			s.timer.Reset(rest)
			s.mu.Unlock()
			return
		}
		// Timeout == Interval: the next ping is due now.
	}

	// The next ping is due.
	if cfg.AnyFrame {
		if act := s.c.Activity(); act != s.lastAct {
			// The peer spoke during the interval: no ping needed.
			s.lastAct = act
			s.missed = 0
			s.timer.Reset(cfg.Interval)
			s.mu.Unlock()
			return
		}
	}
	s.seq++
	s.awaiting, s.answered = true, false
	s.sentAt = s.c.Clock().Now()
	// Armed before the ping is written: a write stuck on a peer that stopped
	// reading must not keep the timeout from firing (it aborts the
	// connection, which releases the write).
	s.timer.Reset(cfg.Timeout)
	core.Emit(s.c, PingSent{ConnID: s.c.Conn().ID(), Seq: s.seq, At: s.sentAt})

	seq := s.seq
	s.mu.Unlock()

	// A connection that started closing refuses the write: never a ping on
	// a closing socket.
	switch {
	case cfg.Mode == Text:
		_ = s.c.WriteDirect(context.Background(), ws.OpText, cfg.PingPayload)
	case len(cfg.PingPayload) == 0:
		// The ping carries its number, so that a late pong is not taken
		// for the answer to a later ping.
		var p [8]byte
		binary.BigEndian.PutUint64(p[:], seq)
		_ = s.c.Ping(context.Background(), p[:])
	default:
		_ = s.c.Ping(context.Background(), cfg.PingPayload)
	}
}

func (s *state) timeout(missed int) {
	cfg := &s.h.cfg
	err := fmt.Errorf("%w: %d ping(s) unanswered within %v", ErrTimeout, missed, cfg.Timeout)
	core.Emit(s.c, Timeout{ConnID: s.c.Conn().ID(), Missed: missed, Err: err, At: s.c.Clock().Now()})
	_ = s.c.Abort(err)
}

// pong records the answer to the outstanding ping. It runs on the read
// loop. seq is the ping a protocol pong names in its payload, or 0 when it
// names none: then any answer while a ping is outstanding counts (some
// peers answer with an empty pong; text pongs carry no number).
func (s *state) pong(seq uint64) {
	s.mu.Lock()
	if s.stopped || !s.awaiting || s.answered || (seq != 0 && seq != s.seq) {
		s.mu.Unlock()
		return // unsolicited (RFC 6455 allows it) or a duplicate: proof of life for AnyFrame only
	}
	s.answered = true
	s.pongs++
	s.missed = 0
	now := s.c.Clock().Now()
	rtt := now.Sub(s.sentAt)
	s.rtt = rtt
	core.Emit(s.c, PongReceived{ConnID: s.c.Conn().ID(), Seq: s.seq, RTT: rtt, At: now})
	s.mu.Unlock()
}

// control observes inbound control frames in protocol mode.
func (s *state) control(op ws.OpCode, p []byte) {
	if op != ws.OpPong {
		return
	}
	var seq uint64
	if len(p) == 8 && len(s.h.cfg.PingPayload) == 0 {
		seq = binary.BigEndian.Uint64(p)
	}
	s.pong(seq)
}

// inbound is the text-mode filter, outermost on the inbound path: it
// consumes heartbeat messages and answers the peer's pings.
func (s *state) inbound(next core.Handler) core.Handler {
	classify := s.h.classify
	pong := s.h.cfg.PongPayload
	return func(ctx context.Context, f core.Frame) error {
		switch classify(f.Op, f.Payload) {
		case Ping:
			return answer(ctx, s.c, pong)
		case Pong:
			s.pong(0)
			return nil
		}
		return next(ctx, f)
	}
}
