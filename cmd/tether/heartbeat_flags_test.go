package main

import (
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/heartbeat"
)

// heartbeatCases are the heartbeat flags of serve and connect, and what
// each must give. tether's heartbeat is on by default on both sides, so
// "--ping-interval 0" must turn it off explicitly.
var heartbeatCases = []struct {
	name     string
	args     []string
	on       bool
	interval time.Duration
}{
	{"default", nil, true, heartbeat.DefaultInterval},
	{"off", []string{"--ping-interval", "0"}, false, 0},
	{"set", []string{"--ping-interval", "2s", "--pong-timeout", "1s"}, true, 2 * time.Second},
}

// serve's connections run the heartbeat the flags ask for, and none with
// --ping-interval 0.
func TestServeHeartbeatFlags(t *testing.T) {
	for _, c := range heartbeatCases {
		t.Run(c.name, func(t *testing.T) {
			var hf heartbeatFlags
			fs := newFlagSet("serve", "")
			hf.register(fs, "")
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			cfg, on, err := hf.config()
			if err != nil {
				t.Fatal(err)
			}
			s, err := newEchoServer(echoConfig{heartbeat: cfg, heartbeatOn: on})
			if err != nil {
				t.Fatal(err)
			}
			defer s.shutdown()
			var hbs []*heartbeat.Heartbeat
			for _, p := range s.up.Plugins {
				if hb, ok := p.(*heartbeat.Heartbeat); ok {
					hbs = append(hbs, hb)
				}
			}
			switch {
			case !c.on && len(hbs) != 0:
				t.Fatalf("%d heartbeat(s) on the server's connections, want none", len(hbs))
			case c.on && len(hbs) != 1:
				t.Fatalf("%d heartbeat(s) on the server's connections, want 1", len(hbs))
			case c.on && hbs[0].Config().Interval != c.interval:
				t.Fatalf("server heartbeat every %v, want %v", hbs[0].Config().Interval, c.interval)
			}
		})
	}
}

// connect's client runs the heartbeat the flags ask for, and none with
// --ping-interval 0.
func TestConnectHeartbeatFlags(t *testing.T) {
	addr, _, _ := startServe(t)
	for _, c := range heartbeatCases {
		t.Run(c.name, func(t *testing.T) {
			var cf clientFlags
			fs := newFlagSet("connect", "")
			cf.register(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			opts, err := cf.options()
			if err != nil {
				t.Fatal(err)
			}
			cl, err := tether.Dial(testCtx(t), "ws://"+addr+"/ws", opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := cl.Shutdown(testCtx(t), ws.StatusNormalClosure, ""); err != nil {
					t.Error(err)
				}
			}()
			conn := cl.Conn()
			if conn == nil {
				t.Fatal("no live connection after Dial")
			}
			if _, on := heartbeat.StatsOf(conn); on != c.on {
				t.Fatalf("client heartbeat on: %v, want %v", on, c.on)
			}
		})
	}
}
