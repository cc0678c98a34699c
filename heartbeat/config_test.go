package heartbeat_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
)

func TestConfigDefaults(t *testing.T) {
	h := mustHB(t, heartbeat.Config{})
	c := h.Config()
	if c.Interval != 30*time.Second || c.Timeout != 10*time.Second || c.Mode != heartbeat.Protocol || c.MaxMissed != 0 || c.AnyFrame {
		t.Fatalf("defaults %+v", c)
	}
	c = mustHB(t, heartbeat.Config{Mode: heartbeat.Text}).Config()
	if string(c.PingPayload) != "ping" || string(c.PongPayload) != "pong" {
		t.Fatalf("text defaults %q %q", c.PingPayload, c.PongPayload)
	}
	// A short interval brings the default timeout down with it.
	if c := mustHB(t, heartbeat.Config{Interval: 4 * time.Second}).Config(); c.Timeout != 4*time.Second {
		t.Fatalf("timeout %v for a 4 s interval", c.Timeout)
	}
	// The config is copied: changing the caller's slice later changes nothing.
	ping := []byte("hb?")
	h = mustHB(t, heartbeat.Config{Mode: heartbeat.Text, PingPayload: ping})
	ping[0] = 'X'
	if string(h.Config().PingPayload) != "hb?" {
		t.Fatal("the heartbeat kept the caller's slice")
	}
	if heartbeat.Protocol.String() != "protocol" || heartbeat.Text.String() != "text" || heartbeat.Mode(9).String() != "Mode(9)" {
		t.Fatal("Mode.String")
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	for name, cfg := range map[string]heartbeat.Config{
		"negative interval":      {Interval: -time.Second},
		"negative timeout":       {Timeout: -time.Second},
		"timeout over interval":  {Interval: 5 * time.Second, Timeout: 6 * time.Second},
		"negative missed":        {MaxMissed: -1},
		"unknown mode":           {Mode: 7},
		"protocol ping too big":  {PingPayload: make([]byte, 126)},
		"same ping and pong":     {Mode: heartbeat.Text, PingPayload: []byte("hb"), PongPayload: []byte("hb")},
		"ping not UTF-8":         {Mode: heartbeat.Text, PingPayload: []byte{0xff}},
		"default pong as ping":   {Mode: heartbeat.Text, PingPayload: []byte("pong")},
		"timeout over a default": {Timeout: 31 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := heartbeat.New(cfg)
			if !errors.Is(err, core.ErrInvalidConfig) || h != nil {
				t.Fatalf("New(%+v) = %v, %v", cfg, h, err)
			}
		})
	}
}

// Attach refuses nil input instead of panicking, and StatsOf of a
// connection without a heartbeat is false.
func TestNilInput(t *testing.T) {
	var h *heartbeat.Heartbeat
	if err := h.Attach(nil); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("nil Attach: %v", err)
	}
	if err := mustHB(t, heartbeat.Config{}).Attach(nil); !errors.Is(err, core.ErrInvalidConfig) {
		t.Fatalf("Attach to a nil handle: %v", err)
	}
	if _, ok := heartbeat.StatsOf(nil); ok {
		t.Fatal("StatsOf(nil)")
	}
	_, srv, _ := rawClient(t, &core.Upgrader{})
	if _, ok := heartbeat.StatsOf(srv); ok {
		t.Fatal("StatsOf a connection without a heartbeat")
	}
}
