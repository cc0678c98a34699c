package goid

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGetDiffersAcrossGoroutines(t *testing.T) {
	mine := Get()
	if mine == 0 {
		t.Fatal("Get returned 0 for the test goroutine")
	}
	if again := Get(); again != mine {
		t.Fatalf("Get changed within one goroutine: %d then %d", mine, again)
	}
	other := make(chan uint64)
	go func() { other <- Get() }()
	if o := <-other; o == mine || o == 0 {
		t.Fatalf("another goroutine got id %d, test goroutine %d", o, mine)
	}
}
