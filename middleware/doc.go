// Package middleware holds ready-made members of tether's middleware chain,
// one per file: Recover, Logging and MaxSize, and the PingLimit plugin.
//
// Each returns a core.Middleware usable on the inbound chain
// (core.Config.Inbound), the outbound chain (core.Config.Outbound) or both.
// On the inbound path an error closes the connection with the close code the
// error calls for (see core.Handler); on the outbound path it is returned to
// the writer.
//
// Order matters and is fixed: the first middleware of a chain is the
// outermost. Put Recover first, so that it also catches panics of the
// middlewares after it.
package middleware
