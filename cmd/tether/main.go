// Command tether shows the tether library at work and lets a person poke a
// WebSocket peer with it.
//
//	tether serve   [--addr 127.0.0.1:8080] [--path /ws] [--log-format text|json] ...
//	tether connect [flags] URL
//	tether demo    [--simulated] [--json]
//
// serve runs an echo server with a server-side heartbeat and, at /, a page
// whose script is a browser client with heartbeat and reconnect. connect
// is a client like wscat that stays connected: stdin lines go out as text
// messages, received messages go to stdout, lifecycle events to stderr.
// demo runs a server, a fault-injecting proxy and a client in one process
// and prints the timeline of what tether did about each fault.
//
// Exit codes: 0 success, 1 failure at run time (a refused first dial, a
// client that gave up reconnecting, a demo whose expectations failed), 2 a
// usage error (unknown command or flag, a bad value).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the commands close down gracefully; a second
	// one gets Go's default handling and ends the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// jsonExit carries the error of a command whose output is JSON lines: run
// prints it as a JSON record {"event":"exit","code":N,"err":"..."}.
type jsonExit struct{ err error }

func (e *jsonExit) Error() string { return e.err.Error() }
func (e *jsonExit) Unwrap() error { return e.err }

// errHelp: -h or --help was asked for; usage went to stdout.
var errHelp = errors.New("help requested")

const usageText = `tether keeps WebSocket connections alive and brings them back.

Usage:
  tether serve   [--addr 127.0.0.1:8080] [--path /ws] [--log-format text|json] [flags]
  tether connect [flags] URL
  tether demo    [--simulated] [--json]

Run 'tether COMMAND -h' for the flags of a command.
`

// run is the whole program; it returns the exit code. ctx ends on SIGINT or
// SIGTERM.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tether: missing command (serve, connect or demo); see 'tether help'")
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, rest, stdout, stderr)
	case "connect":
		err = runConnect(ctx, rest, stdin, stdout, stderr)
	case "demo":
		err = runDemo(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "tether: unknown command %q (want serve, connect or demo)\n", cmd)
		return exitUsage
	}
	var (
		ue *usageError
		je *jsonExit
	)
	code := exitFailure
	if errors.As(err, &ue) {
		code = exitUsage
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &je):
		b, _ := json.Marshal(map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano), "event": "exit", "command": args[0], "code": code, "err": oneLine(err.Error())})
		fmt.Fprintf(stderr, "%s\n", b)
		return code
	case ue != nil:
		fmt.Fprintf(stderr, "tether %s: %s\n", args[0], oneLine(ue.msg))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "tether %s: %s\n", args[0], oneLine(err.Error()))
		return exitFailure
	}
}
