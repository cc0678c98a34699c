package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gobwas/ws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/events"
	"github.com/tetherws/tether/retry"
)

// maxLine bounds one line of stdin (one message).
const maxLine = 16 << 20

func runConnect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		cf      clientFlags
		jsonOut bool
		id      string
	)
	fs := newFlagSet("connect", "tether connect [flags] URL")
	cf.register(fs)
	fs.BoolVar(&jsonOut, "json", false, "print messages (stdout) and events (stderr) as JSON lines")
	fs.StringVar(&id, "id", "tether", "client id: connections are named ID.1, ID.2, ...")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
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
	defer bus.Wait() // every event printed before we return

	onMessage := func(_ context.Context, f core.Frame) error {
		printMessage(out, f)
		return nil
	}
	c, err := tether.Dial(ctx, url, append(opts, tether.WithBus(bus), tether.WithHandler(onMessage), tether.WithClientID(id))...)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}

	lines := make(chan string)
	readDone := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(stdin, lines, readDone, stop)

	for {
		select {
		case line := <-lines:
			if err := c.SendText(context.Background(), line); err != nil {
				if errors.Is(err, tether.ErrBufferFull) {
					evw.write(time.Now(), "", "send.refused", "message not sent: "+err.Error(), map[string]any{"err": err.Error()})
					continue
				}
				return ended(c, url)
			}
		case err := <-readDone: // stdin ended: say goodbye
			if err != nil {
				evw.write(time.Now(), "", "stdin.error", "reading stdin: "+err.Error(), map[string]any{"err": err.Error()})
			}
			return closeClient(c, "stdin closed")
		case <-c.Done():
			return ended(c, url)
		case <-ctx.Done():
			return closeClient(c, "interrupted")
		}
	}
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
	done <- sc.Err()
}

// closeClient closes c normally and reports messages that never left.
func closeClient(c *tether.Client, why string) error {
	err := c.Close(ws.StatusNormalClosure, "bye")
	if errors.Is(err, tether.ErrUnsent) {
		return fmt.Errorf("%s while reconnecting: %d message(s) never sent", why, len(c.Unsent()))
	}
	if err != nil && errors.Is(err, core.ErrClosed) && c.Err() != nil && c.Err() != tether.ErrClientClosed {
		return fmt.Errorf("%s: %w", why, c.Err())
	}
	return nil
}

// ended explains why the client stopped on its own.
func ended(c *tether.Client, url string) error {
	<-c.Done()
	err := c.Err()
	unsent := ""
	if n := len(c.Unsent()); n > 0 {
		unsent = fmt.Sprintf("; %d message(s) never sent", n)
	}
	var gu *retry.GaveUpError
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

// printMessage writes one received message: text as is, binary in base64.
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
	fmt.Fprintf(out.w, "%s\n", f.Payload)
}
