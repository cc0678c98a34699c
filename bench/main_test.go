package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(idleEnv) != "" { // re-executed as one peer's idle server
		os.Exit(idleChild())
	}
	goleak.VerifyTestMain(m)
}
