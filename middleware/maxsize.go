package middleware

import (
	"context"
	"fmt"

	"github.com/tetherws/tether/core"
)

// MaxSize refuses any message of more than n bytes with an error matching
// core.ErrMessageTooBig: inbound, the connection closes with 1009; outbound,
// the writer gets the error and the connection stays open.
//
// The connection's own limit (core.Config.MaxMessageSize) already bounds
// inbound memory before a message is read; MaxSize adds a tighter limit on
// one path or at one point of the chain, such as messages to a peer that
// cannot take big ones. n must be positive.
func MaxSize(n int) (core.Middleware, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: MaxSize(%d): the limit must be positive", core.ErrInvalidConfig, n)
	}
	return func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) error {
			if len(f.Payload) > n {
				return fmt.Errorf("%w: %d bytes, limit %d", core.ErrMessageTooBig, len(f.Payload), n)
			}
			return next(ctx, f)
		}
	}, nil
}
