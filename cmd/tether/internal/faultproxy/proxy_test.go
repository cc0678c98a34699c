package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func dialProxy(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestForwardThenDrop(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dialProxy(t, p)
	roundTrip(t, c, "hello")
	if n := p.Drop(); n != 1 {
		t.Fatalf("Drop() = %d", n)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after a drop succeeded")
	}
	roundTrip(t, dialProxy(t, p), "again") // new connections still pass
}

func TestBlackHoleSwallowsButKeepsTheSocket(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dialProxy(t, p)
	roundTrip(t, c, "before")
	if n := p.BlackHole(); n != 1 {
		t.Fatalf("BlackHole() = %d", n)
	}
	if _, err := io.WriteString(c, "into the hole"); err != nil {
		t.Fatalf("write into the hole: %v", err)
	}
	// wall time: nothing arrives on a real socket; a short deadline proves silence, not an error.
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from the hole: %v, want a timeout", err)
	}
	if p.Live() != 1 {
		t.Fatalf("Live() = %d: the black hole closed the connection", p.Live())
	}
	roundTrip(t, dialProxy(t, p), "new") // only connections open at the time are affected
}

func TestRefuse(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Refuse(http.StatusServiceUnavailable)
	c := dialProxy(t, p)
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("response %v, %v", resp, err)
	}
	resp.Body.Close()
	p.Refuse(0)
	roundTrip(t, dialProxy(t, p), "accepted again")
}

func TestCloseTwice(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
}
