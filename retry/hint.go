package retry

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tetherws/tether/core"
)

// RetryAfter is a hint for WithHint: when cause is a refused handshake
// (*core.HandshakeError, anywhere in its chain) whose response carries a
// Retry-After header in delay-seconds ("120"), it returns that delay. An
// HTTP-date Retry-After is not honoured (it would need the server's clock),
// nor is anything else: the backoff then decides.
func RetryAfter(cause error) (time.Duration, bool) {
	var he *core.HandshakeError
	if !errors.As(cause, &he) || he.Header == nil {
		return 0, false
	}
	v := strings.TrimSpace(he.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false
	}
	if n > math.MaxInt64/uint64(time.Second) {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
