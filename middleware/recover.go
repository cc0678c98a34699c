package middleware

import (
	"context"
	"runtime/debug"

	"github.com/tetherws/tether/core"
)

// ErrPanic is matched (errors.Is) by the error Recover returns for a panic.
// It is core.ErrPanic.
var ErrPanic = core.ErrPanic

// PanicError is the error Recover returns when the rest of the chain
// panicked: the panic's value and the stack where it happened. It is
// core.PanicError, which core.Config.OnPanic reports too.
type PanicError = core.PanicError

// Recover turns a panic in the rest of the chain (later middlewares and the
// handler) into a *PanicError. On the inbound path the connection then
// closes with 1011 (internal error) instead of the process crashing; the
// reason sent to the peer does not carry the panic's text. It costs a
// deferred call per frame and allocates only when a panic happens.
func Recover() core.Middleware {
	return func(next core.Handler) core.Handler {
		return func(ctx context.Context, f core.Frame) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = &PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			return next(ctx, f)
		}
	}
}
