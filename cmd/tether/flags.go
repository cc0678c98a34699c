package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/retry"
)

// newFlagSet returns a flag set that reports errors to its caller instead
// of printing them with the usage text.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args with fs and returns the positional arguments.
// Flags may come after positional arguments (tether connect URL --json);
// everything after "--" is positional. -h prints the usage to stdout.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fs.Usage()
				return nil, errHelp
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// oneLine keeps an error message on one line, as the exit-code contract
// promises (errors.Join separates with newlines).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// choice is a flag that takes one of a fixed set of words.
type choice struct {
	value   string
	allowed []string
}

func newChoice(def string, allowed ...string) *choice { return &choice{value: def, allowed: allowed} }

func (c *choice) String() string {
	if c == nil {
		return ""
	}
	return c.value
}

func (c *choice) Set(s string) error {
	for _, a := range c.allowed {
		if s == a {
			c.value = s
			return nil
		}
	}
	return fmt.Errorf("want %s", strings.Join(c.allowed, ", "))
}

// headerFlag collects repeated --header 'Key: Value' flags.
type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string {
	if f == nil || len(f.h) == 0 {
		return ""
	}
	var b strings.Builder
	_ = f.h.Write(&b)
	return strings.TrimSpace(b.String())
}

func (f *headerFlag) Set(s string) error {
	k, v, err := parseHeader(s)
	if err != nil {
		return err
	}
	if f.h == nil {
		f.h = http.Header{}
	}
	f.h.Add(k, v)
	return nil
}

// parseHeader parses "Key: Value". The key must be an HTTP token; neither
// part may hold a line break or other control character.
func parseHeader(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("want 'Key: Value'")
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if k == "" {
		return "", "", fmt.Errorf("empty header name")
	}
	for _, r := range k {
		if r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return "", "", fmt.Errorf("header name %q is not a token", k)
		}
	}
	for _, r := range v {
		if r != '\t' && (r < ' ' || r == 0x7f) {
			return "", "", fmt.Errorf("header value of %q holds a control character", k)
		}
	}
	switch http.CanonicalHeaderKey(k) {
	case "Host", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol":
		return "", "", fmt.Errorf("header %q is set by the handshake itself", k)
	}
	return k, v, nil
}

// heartbeatFlags are the heartbeat knobs shared by serve and connect.
type heartbeatFlags struct {
	interval time.Duration
	timeout  time.Duration
	text     bool
}

func (h *heartbeatFlags) register(fs *flag.FlagSet, textHelp string) {
	fs.DurationVar(&h.interval, "ping-interval", heartbeat.DefaultInterval, "time between heartbeat pings (0 turns the heartbeat off)")
	fs.DurationVar(&h.timeout, "pong-timeout", heartbeat.DefaultTimeout, "how long a ping may go unanswered before the peer is declared dead")
	if textHelp != "" {
		fs.BoolVar(&h.text, "text-ping", false, textHelp)
	}
}

// minHeartbeat is the shortest --ping-interval and --pong-timeout: below
// it a heartbeat on the real clock would flood the peer and time out on
// scheduling noise.
const minHeartbeat = 10 * time.Millisecond

// config returns the heartbeat configuration, or ok false when it is off.
func (h *heartbeatFlags) config() (cfg heartbeat.Config, ok bool, err error) {
	switch {
	case h.interval < 0:
		return cfg, false, usagef("--ping-interval %v is negative", h.interval)
	case h.interval == 0:
		return cfg, false, nil
	case h.interval < minHeartbeat:
		return cfg, false, usagef("--ping-interval %v is below %v (0 turns the heartbeat off)", h.interval, minHeartbeat)
	case h.timeout < minHeartbeat:
		return cfg, false, usagef("--pong-timeout %v is below %v", h.timeout, minHeartbeat)
	case h.timeout > h.interval:
		return cfg, false, usagef("--pong-timeout %v exceeds --ping-interval %v", h.timeout, h.interval)
	}
	cfg = heartbeat.Config{Interval: h.interval, Timeout: h.timeout}
	if h.text {
		cfg.Mode = heartbeat.Text
	}
	if _, err := heartbeat.New(cfg); err != nil { // the library's own checks, as a usage error
		return cfg, false, usagef("%v", err)
	}
	return cfg, true, nil
}

// heartbeatOption returns the option for a heartbeat config: on, or off
// for --ping-interval 0. Off must be said: tether's heartbeat is on by
// default, on both sides.
func heartbeatOption(cfg heartbeat.Config, on bool) tether.Option {
	if !on {
		return tether.WithoutHeartbeat()
	}
	return tether.WithHeartbeat(cfg)
}

// clientFlags are the knobs of a tether.Client.
type clientFlags struct {
	hb               heartbeatFlags
	retryBase        time.Duration
	retryFactor      float64
	retryMax         time.Duration
	retryMaxAttempts int
	stableAfter      time.Duration
	jitter           *choice
	headers          headerFlag
	retryFirst       bool
	handshakeTimeout time.Duration
	closeTimeout     time.Duration
	sendBuffer       int
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	c.hb.register(fs, `heartbeat with text messages "ping"/"pong" (the browser recipe's) instead of protocol ping frames`)
	fs.DurationVar(&c.retryBase, "retry-base", retry.DefaultBase, "delay before the first reconnect attempt")
	fs.Float64Var(&c.retryFactor, "retry-factor", retry.DefaultFactor, "each further delay is the previous one times this (>= 1)")
	fs.DurationVar(&c.retryMax, "retry-max-delay", retry.DefaultMax, "cap on any one delay")
	fs.IntVar(&c.retryMaxAttempts, "retry-max-attempts", retry.DefaultMaxAttempts, "attempts after a connection is lost before giving up (-1: no limit, 0: never reconnect)")
	fs.DurationVar(&c.stableAfter, "retry-stable-after", 0, "how long a connection must stay up before the attempt counter resets")
	c.jitter = newChoice("none", "none", "full", "equal", "decorrelated")
	fs.Var(c.jitter, "jitter", "randomise reconnect delays: none|full|equal|decorrelated")
	fs.Var(&c.headers, "header", "handshake header 'Key: Value' (repeatable)")
	fs.BoolVar(&c.retryFirst, "retry-first-dial", false, "retry the first connection on the reconnect schedule instead of failing at once")
	fs.DurationVar(&c.handshakeTimeout, "handshake-timeout", 10*time.Second, "bound on each dial and opening handshake")
	fs.DurationVar(&c.closeTimeout, "close-timeout", core.DefaultCloseTimeout, "bound on the close handshake")
	fs.IntVar(&c.sendBuffer, "send-buffer", tether.DefaultSendBufferMessages, "messages held while reconnecting")
}

// policy returns the reconnect policy, nil when reconnecting is off.
func (c *clientFlags) policy() (*retry.Policy, error) {
	if c.retryMaxAttempts == 0 {
		return nil, nil
	}
	if c.retryMaxAttempts < retry.Unlimited {
		return nil, usagef("--retry-max-attempts %d: want -1 (no limit), 0 (off) or a positive number", c.retryMaxAttempts)
	}
	b, err := retry.Exponential(c.retryBase, c.retryFactor, c.retryMax)
	if err != nil {
		return nil, usagef("%v", err)
	}
	var j retry.Jitter
	switch c.jitter.value {
	case "none":
		j = retry.NoJitter
	case "full":
		j = retry.FullJitter
	case "equal":
		j = retry.EqualJitter
	case "decorrelated":
		if j, err = retry.DecorrelatedJitter(c.retryBase, c.retryMax); err != nil {
			return nil, usagef("%v", err)
		}
	}
	p, err := retry.New(retry.WithBackoff(b), retry.WithJitter(j), retry.WithMaxAttempts(c.retryMaxAttempts), retry.WithStableAfter(c.stableAfter))
	if err != nil {
		return nil, usagef("%v", err)
	}
	return p, nil
}

// options returns the tether options the flags ask for.
func (c *clientFlags) options() ([]tether.DialOption, error) {
	hb, on, err := c.hb.config()
	if err != nil {
		return nil, err
	}
	opts := []tether.DialOption{heartbeatOption(hb, on)}
	p, err := c.policy()
	if err != nil {
		return nil, err
	}
	if p == nil {
		opts = append(opts, tether.WithoutRetry())
	} else {
		opts = append(opts, tether.WithRetry(p))
	}
	if c.retryFirst {
		if p == nil {
			return nil, usagef("--retry-first-dial needs reconnecting on (--retry-max-attempts is 0)")
		}
		opts = append(opts, tether.WithRetryFirstDial())
	}
	if c.handshakeTimeout <= 0 {
		return nil, usagef("--handshake-timeout %v must be positive", c.handshakeTimeout)
	}
	if c.closeTimeout <= 0 {
		return nil, usagef("--close-timeout %v must be positive", c.closeTimeout)
	}
	if c.sendBuffer <= 0 {
		return nil, usagef("--send-buffer %d must be positive", c.sendBuffer)
	}
	opts = append(opts,
		tether.WithHandshakeTimeout(c.handshakeTimeout),
		tether.WithCloseTimeout(c.closeTimeout),
		tether.WithSendBuffer(c.sendBuffer, tether.DefaultSendBufferBytes))
	if len(c.headers.h) > 0 {
		opts = append(opts, tether.WithHeader(c.headers.h))
	}
	return opts, nil
}

// checkURL validates a WebSocket URL for connect.
func checkURL(raw string) error {
	if _, err := core.ParseURL(raw); err != nil {
		// Redacted: a password or a token in the query is no business of stderr.
		return usagef("bad URL %q: %v", core.RedactURL(raw), err)
	}
	return nil
}
