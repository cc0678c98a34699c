package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
)

// maxLine bounds one line of stdin (one message).
const maxLine = 16 << 20

// connectUsage is the synopsis and description of tether connect -h.
const connectUsage = `tether connect [flags] URL

Each line of stdin goes out as one text message (queued while reconnecting).
A line that is not valid UTF-8, or that the full send buffer refuses, is not
sent: stderr says so ("send.refused") and the command goes on, but exits 1 at
the end. A line longer than 16 MiB ends the input and exits 1.

Each received message is one line of stdout. A text message is printed as
is, unless it holds a control character (a newline, a tab, an escape...) or
starts with a double quote: then it is printed Go-quoted, "line 1\nline 2".
A binary message is printed as "[binary N bytes, base64] ...". Lifecycle
events go to stderr, one line each; --json prints both as JSON lines, and
the final error as {"event":"exit",...}.

The URL's password and query values are never printed (REDACTED).`

func runConnect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	var (
		cf      clientFlags
		jsonOut bool
		id      string
	)
	fs := newFlagSet("connect", connectUsage)
	cf.register(fs)
	fs.BoolVar(&jsonOut, "json", false, "print messages (stdout) and events (stderr) as JSON lines")
	fs.StringVar(&id, "id", "tether", "client id: connections are named ID.1, ID.2, ...")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	defer func() {
		if jsonOut && err != nil {
			err = &jsonExit{err: err}
		}
	}()
	switch {
	case len(pos) == 0:
		return usagef("missing URL (ws://host:port/path)")
	case len(pos) > 1:
		return usagef("want one URL, got %d arguments", len(pos))
	case id == "":
		return usagef("--id must not be empty")
	}
	url := pos[0]
	if err := checkURL(url); err != nil {
		return err
	}
	opts, err := cf.options()
	if err != nil {
		return err
	}

	stamp := func(t time.Time) string { return t.Format("15:04:05.000") }
	evw := &lineWriter{w: stderr, json: jsonOut, stamp: stamp}
	out := &lineWriter{w: stdout, json: jsonOut, stamp: stamp}
	bus := events.NewBus()
	defer bus.Close()
	unsub, err := subscribeLifecycle(bus, func(e events.Event) { evw.event("", e) })
	if err != nil {
		return err
	}
	defer unsub()
	defer drain(bus) // every event printed before we return

	onMessage := func(_ context.Context, f core.Frame) error {
		printMessage(out, f)
		return nil
	}
	opts = append(opts, tether.WithBus(bus), tether.WithHandler(onMessage), tether.WithClientID(id))
	c, err := tether.Dial(ctx, url, opts...)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", core.RedactURL(url), err)
	}

	lines := make(chan string)
	readDone := make(chan error, 1)
	stop := make(chan struct{})
	go readLines(stdin, lines, readDone, stop)
	// The sender is a goroutine of its own: a send blocked because the peer
	// stopped reading must not keep this loop from seeing an interrupt.
	p := &pump{c: c, evw: evw, lines: lines, readDone: readDone, stop: stop}
	closeTimeout := cf.closeTimeout
	sent := make(chan pumpResult, 1)
	senderDone := make(chan struct{})
	// Sends are not bounded by ctx: an interrupt closes the client first
	// (which bounds a send stuck on a peer that stopped reading by the
	// close timeout), so that the close frame still goes out; a send whose
	// own ctx ended would abort the connection instead.
	go func() { defer close(senderDone); sent <- p.run(context.WithoutCancel(ctx)) }()
	finish := func(err error) error {
		close(stop)
		<-senderDone // the sender returns: the client is closed or ended, or stop is closed
		if n := p.refused.Load(); n > 0 {
			err = errors.Join(err, fmt.Errorf("%d line(s) of stdin refused, not sent", n))
		}
		return err
	}

	select {
	case res := <-sent:
		switch {
		case res.ended:
			return finish(ended(c, url))
		case res.stdinErr != nil: // a line too long or a failed read: say so, say goodbye, fail
			evw.write(time.Now(), "", "stdin.error", "reading stdin: "+res.stdinErr.Error(), map[string]any{"err": res.stdinErr.Error()})
			return finish(errors.Join(fmt.Errorf("reading stdin: %w", res.stdinErr), closeClient(c, "stdin failed", closeTimeout)))
		default: // stdin ended: say goodbye
			return finish(closeClient(c, "stdin closed", closeTimeout))
		}
	case <-c.Done():
		return finish(ended(c, url))
	case <-ctx.Done():
		return finish(interrupted(c, evw, closeTimeout))
	}
}

// interrupted closes the client after SIGINT or SIGTERM. main stops
// catching signals once the first arrived: a second one kills the process
// while the close waits for the peer (at most --close-timeout).
func interrupted(c *tether.Client, evw *lineWriter, closeTimeout time.Duration) error {
	evw.write(time.Now(), "", "interrupted", "interrupted: closing (interrupt again to quit at once)", map[string]any{})
	return closeClient(c, "interrupted", closeTimeout)
}

// pump sends the lines of stdin as text messages, in order.
type pump struct {
	c        *tether.Client
	evw      *lineWriter
	lines    <-chan string
	readDone <-chan error
	stop     <-chan struct{}
	refused  atomic.Int64
}

// pumpResult says why a pump stopped.
type pumpResult struct {
	stdinErr error // stdin failed (nil at EOF)
	ended    bool  // the client ended: a send failed for good
}

// run sends until stdin ends, the client ends or stop is closed.
// A line that is not valid UTF-8, or that the full send buffer refuses, is
// reported on stderr as "send.refused" and counted; the others go on.
func (p *pump) run(ctx context.Context) pumpResult {
	for {
		select {
		case line := <-p.lines:
			if !utf8.ValidString(line) {
				p.refuse("not valid UTF-8 (a text message must be)", len(line))
				continue
			}
			if err := p.c.SendText(ctx, line); err != nil {
				switch {
				case errors.Is(err, tether.ErrBufferFull):
					p.refuse(err.Error(), len(line))
					continue
				}
				return pumpResult{ended: true}
			}
		case err := <-p.readDone: // after every line read before it
			return pumpResult{stdinErr: err}
		case <-p.stop:
			return pumpResult{}
		}
	}
}

func (p *pump) refuse(why string, size int) {
	p.refused.Add(1)
	p.evw.write(time.Now(), "", "send.refused", "line not sent: "+why, map[string]any{"err": why, "bytes": size})
}

// readLines sends each line of r to lines, then the read error (nil at
// EOF) to done. It returns early when stop is closed; a read blocked on r
// ends only with r (the process exits or the test closes its pipe).
func readLines(r io.Reader, lines chan<- string, done chan<- error, stop <-chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-stop:
			return
		}
	}
	err := sc.Err()
	if errors.Is(err, bufio.ErrTooLong) {
		err = fmt.Errorf("a line is longer than %d bytes (the rest of stdin is not read): %w", maxLine, err)
	}
	done <- err
}

// closeGrace is how long closeClient waits past the close timeout: the
// close handshake is bounded by --close-timeout on the client's clock, and
// the client ends right after; this only guards against a hang.
const closeGrace = 5 * time.Second

// closeClient closes c normally, waits until it has ended (the peer
// answered, or --close-timeout passed), and reports messages that never
// left.
func closeClient(c *tether.Client, why string, closeTimeout time.Duration) error {
	// wall time: a hang guard beyond the close timeout, itself on the client's (real) clock.
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout+closeGrace)
	defer cancel()
	err := c.Shutdown(ctx, ws.StatusNormalClosure, "bye")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tether.ErrUnsent):
		return fmt.Errorf("%s while reconnecting: %d message(s) never sent", why, len(c.Unsent()))
	}
	// The client had ended on its own before the close (it gave up, or the
	// peer closed a connection that was not to be retried), or it was still
	// closing after the grace: say why, and what it could not send.
	if n := len(c.Unsent()); n > 0 {
		return fmt.Errorf("%s: %w; %d message(s) never sent", why, err, n)
	}
	return fmt.Errorf("%s: %w", why, err)
}

// ended explains why the client stopped on its own. url is printed
// redacted: its password and query values may be secrets.
func ended(c *tether.Client, rawURL string) error {
	url := core.RedactURL(rawURL)
	<-c.Done()
	err := c.Err()
	unsent := ""
	if n := len(c.Unsent()); n > 0 {
		unsent = fmt.Sprintf("; %d message(s) never sent", n)
	}
	var gu *retry.GaveUpError
	if errors.As(err, &gu) && gu.Attempts == 0 { // the classifier refused to retry this one
		return fmt.Errorf("connection to %s ended: %v (an error that is not retried)%s", url, gu.LastErr, unsent)
	}
	if errors.As(err, &gu) {
		return fmt.Errorf("gave up reconnecting to %s after %d attempt(s): %v%s", url, gu.Attempts, gu.LastErr, unsent)
	}
	switch core.CloseStatus(err) {
	case ws.StatusNormalClosure, ws.StatusGoingAway:
		if unsent == "" {
			return nil // reconnecting was off and the server said goodbye
		}
	}
	return fmt.Errorf("connection to %s ended: %v%s", url, err, unsent)
}

// printMessage writes one received message on one line: text as is unless
// quoteText says otherwise, binary in base64.
func printMessage(out *lineWriter, f core.Frame) {
	now := time.Now()
	if out.json {
		fields := map[string]any{"op": "text", "data": string(f.Payload)}
		if f.Op == ws.OpBinary {
			fields = map[string]any{"op": "binary", "data_base64": base64.StdEncoding.EncodeToString(f.Payload)}
		}
		out.write(now, "", "message", "", fields)
		return
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if f.Op == ws.OpBinary {
		fmt.Fprintf(out.w, "[binary %d bytes, base64] %s\n", len(f.Payload), base64.StdEncoding.EncodeToString(f.Payload))
		return
	}
	text := string(f.Payload)
	if quoteText(text) {
		text = strconv.Quote(text)
	}
	fmt.Fprintf(out.w, "%s\n", text)
}

// quoteText reports whether a received text message is printed as a Go
// quoted string: when it holds a control character (a newline would split
// it into several lines, an escape sequence would drive the terminal) or
// invalid UTF-8, or starts with a double quote (so that a quoted line is
// never taken for a message printed as is).
func quoteText(s string) bool {
	if strings.HasPrefix(s, `"`) || !utf8.ValidString(s) {
		return true
	}
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}
