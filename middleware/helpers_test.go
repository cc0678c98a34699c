package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tetherws/tether/core"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair starts a tether server with srvCfg over loopback TCP and dials it
// with cliCfg. It returns the client (serving) and the server's Serve result.
func pair(t *testing.T, srvCfg, cliCfg core.Config) (*core.Conn, <-chan error, <-chan error) {
	t.Helper()
	srvErr := make(chan error, 1)
	up := &core.Upgrader{Config: srvCfg}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			srvErr <- err
			return
		}
		srvErr <- c.Serve(context.Background())
	}))
	t.Cleanup(srv.Close)
	c, err := core.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	cliErr := make(chan error, 1)
	go func() { cliErr <- c.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = c.Close(1000, "") // starts the close; the server answers it
		select {
		case <-c.Done():
		case <-testCtx(t).Done():
			t.Error("the client did not end after Close")
		}
	})
	return c, cliErr, srvErr
}

// testCtx bounds a wait, so that a bug fails a test instead of hanging it;
// nothing waits for it when the code works.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // wall time: hang guard only
	t.Cleanup(cancel)
	return ctx
}

func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second): // wall time: hang guard only
		t.Fatal("timed out")
		return nil
	}
}
