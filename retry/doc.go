// Package retry decides when a lost connection is tried again: backoff
// policies (attempt -> delay), jitter strategies that spread a fleet of
// clients apart, a Policy that combines them with limits, and Reconnect,
// the reconnect plugin of a client.
//
// The defaults are the widely copied browser recipe: after a connection is
// lost, try again after 1s * 2^n (1, 2, 4, 8, 16 s), at most 5 attempts, and
// reset the attempt counter once a connection is open again:
//
//	p := retry.Default()
//	d, ok := p.Next(retry.Outage{Attempt: 1}) // 1s, true
//	d, ok = p.Next(retry.Outage{Attempt: 6})  // 0, false: give up
//
// A Policy is stateless and reads no clock: it is told the Outage (the
// attempt's number, the previous delay, the time elapsed since the outage
// began, and the error that ended the last connection or attempt) and
// returns the next delay. One Policy is safe to share between any number
// of clients. WithHint lets that error set the delay: RetryAfter honours a
// server's Retry-After.
//
// Reconnect is the state: it implements core.Reconnector, the interface
// through which tether.Client's supervisor asks whether and when to dial
// again (tether.WithRetry installs it with a Policy; tether.WithReconnector
// replaces it with any other strategy). Its core.Schedule keeps, in one
// place, the attempt counter and the outage's start, so that WithMaxAttempts
// and WithMaxElapsed bound a whole outage, across connections that open but
// do not last (WithStableAfter). It publishes the reconnect events, this
// package's types: Scheduled before each wait, Dialing before each attempt,
// Reconnected when a new connection opened, GaveUp at the end. The waits
// are the client's, on its injected clock (a clockwork.FakeClock in tests).
//
// Every constructor and option validates its input and returns an error
// matching ErrInvalidPolicy (test with errors.Is); none panics.
package retry
