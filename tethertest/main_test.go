package tethertest_test

import (
	"bufio"
	"io"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
