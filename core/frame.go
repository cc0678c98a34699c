package core

import (
	"context"
	"fmt"
	"slices"

	"github.com/gobwas/ws"
)

// Frame is one whole data message: Op is ws.OpText or ws.OpBinary, and
// Payload is the message, reassembled if it arrived in fragments.
//
// On the inbound path Payload belongs to the connection and is valid only
// until the handler returns; a handler that keeps it must copy it. On the
// outbound path Payload belongs to the caller; the connection does not keep
// it after Write returns.
type Frame struct {
	Op      ws.OpCode
	Payload []byte
}

// Handler handles one frame. On the inbound path a non-nil error closes the
// connection with a close code derived from the error: the Code of a
// *CloseError in its chain (with its Reason), 1009 for ErrMessageTooBig,
// 1007 for ErrInvalidUTF8, 1002 for ErrProtocol, 1008 for ErrPolicy, and
// 1011 (internal error, reason "internal error") for anything else; the
// error's own text never goes on the wire. On the outbound path the error
// is returned to the writer.
//
// The ctx given to an inbound handler derives from the ctx given to Serve:
// it carries its values, is done as soon as the connection starts closing,
// and replies written with it are coalesced (see Conn.Write).
type Handler func(ctx context.Context, f Frame) error

// Middleware wraps a Handler with behaviour that runs before and after it.
// A middleware may pass the frame on, change it, drop it (return nil without
// calling next) or refuse it (return an error).
type Middleware func(next Handler) Handler

// Chain is an immutable, ordered list of middlewares. The first middleware
// is the outermost: it sees a frame first on the way in and its result last
// on the way out. The zero Chain is empty and ready to use.
type Chain struct {
	mws []Middleware
}

// NewChain returns a chain of the given middlewares, first = outermost.
// Nil middlewares are skipped.
func NewChain(mws ...Middleware) Chain {
	return Chain{}.Append(mws...)
}

// Append returns a new chain with mws after (inside) those of c; c is left
// unchanged. Nil middlewares are skipped.
func (c Chain) Append(mws ...Middleware) Chain {
	out := make([]Middleware, 0, len(c.mws)+len(mws))
	out = append(out, c.mws...)
	for _, m := range mws {
		if m != nil {
			out = append(out, m)
		}
	}
	return Chain{mws: out}
}

// Len returns the number of middlewares in the chain.
func (c Chain) Len() int { return len(c.mws) }

// Middlewares returns a copy of the chain's middlewares, outermost first.
func (c Chain) Middlewares() []Middleware { return slices.Clone(c.mws) }

// Then composes the chain around h and returns the resulting Handler. The
// composition happens once, here; calling the result costs one function
// call per middleware and allocates nothing unless a middleware does. A nil
// h is a handler that discards every frame. A middleware that returns a nil
// Handler is a bug: the result then fails every frame with an error matching
// ErrInvalidConfig instead of panicking (connections refuse such a chain
// when they are created).
func (c Chain) Then(h Handler) Handler {
	composed, err := c.compose(h)
	if err != nil {
		return func(context.Context, Frame) error { return err }
	}
	return composed
}

func (c Chain) compose(h Handler) (Handler, error) {
	if h == nil {
		h = discard
	}
	for i := len(c.mws) - 1; i >= 0; i-- {
		if h = c.mws[i](h); h == nil {
			return nil, fmt.Errorf("%w: middleware %d of the chain returned a nil Handler", ErrInvalidConfig, i)
		}
	}
	return h, nil
}

func discard(context.Context, Frame) error { return nil }
