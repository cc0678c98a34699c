package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first interrupt closes gracefully, which may wait for the peer up to
// --close-timeout; a second one ends the process at once (Go's default
// handling: main stops catching signals after the first).
func TestSecondInterruptKills(t *testing.T) {
	addr, closeAll := neverReads(t) // the peer never answers the close handshake
	defer closeAll()
	cmd := exec.Command(os.Args[0], "connect", "--ping-interval", "0", "--close-timeout", "1m", "--retry-max-attempts", "0", "ws://"+addr+"/")
	cmd.Env = append(os.Environ(), asCommandEnv+"=1")
	stdin, err := cmd.StdinPipe() // open and silent: only a signal ends connect
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stderr := newLines()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stderr.await(t, "connected tether.1")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	stderr.await(t, "interrupted: closing")
	// The first signal's handling (stop catching) runs beside that line:
	// signal again until the process ends.
	tick := time.NewTicker(50 * time.Millisecond) // wall time: a real process and real signals
	defer tick.Stop()
	guard := time.After(10 * time.Second) // wall time: the close timeout is 1 min; 10 s means the second interrupt was ignored
	for {
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("the process ended with %v, want killed by the second interrupt", err)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && !ws.Signaled() {
				t.Errorf("the process exited with %v, want killed by SIGINT", err)
			}
			if strings.Contains(stderr.String(), "panic") {
				t.Errorf("stderr: %s", stderr.String())
			}
			return
		case <-tick.C:
			_ = cmd.Process.Signal(os.Interrupt)
		case <-guard:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatal("a second interrupt did not end the process while it waited for the close handshake")
		}
	}
}
