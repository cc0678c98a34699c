package middleware

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/tetherws/tether/core"
)

// ErrPanic is matched (errors.Is) by the error Recover returns for a panic.
var ErrPanic = errors.New("tether: handler panicked")

// PanicError is the error Recover returns when the rest of the chain
// panicked: the panic's value and the stack where it happened.
type PanicError struct {
	Value any
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string { return fmt.Sprintf("tether: handler panicked: %v", e.Value) }

// Is reports whether target is ErrPanic.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

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
