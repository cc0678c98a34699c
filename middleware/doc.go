// Package middleware holds ready-made members of tether's middleware chain,
// one per file: Recover, Logging and MaxSize, and the PingLimit plugin.
//
// Recover, Logging and MaxSize each return a core.Middleware usable on the
// inbound chain (core.Config.Inbound), the outbound chain
// (core.Config.Outbound) or both. PingLimit returns a core.Plugin
// (core.Config.Plugins): pings are control frames, which no middleware
// sees, so it counts them with a control-frame hook on the plugin's
// handle.
// On the inbound path an error closes the connection with the close code the
// error calls for (see core.Handler); on the outbound path it is returned to
// the writer.
//
// Order matters and is fixed: the first middleware of a chain is the
// outermost. Put Recover first, so that it also catches panics of the
// middlewares after it.
package middleware
