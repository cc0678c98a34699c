// Package retry decides when a lost connection is tried again: backoff
// policies (attempt -> delay), jitter strategies that spread a fleet of
// clients apart, and a Policy that combines them with limits.
//
// The defaults are the widely copied browser recipe: after a connection is
// lost, try again after 1s * 2^n (1, 2, 4, 8, 16 s), at most 5 attempts, and
// reset the attempt counter once a connection is open again:
//
//	p := retry.Default()
//	d, ok := p.Next(1, 0, 0) // 1s, true
//	d, ok = p.Next(6, 0, 0)  // 0, false: give up
//
// Everything here is stateless. A Policy holds no per-connection state: the
// reconnect loop carries the attempt number, the previous delay and the time
// elapsed since the connection was lost, and asks Policy.Next for the next
// delay. One Policy is safe to share between any number of clients.
//
// Policies read no clock. Loop is the reconnect loop: it waits on the
// injected clock (a clockwork.FakeClock in tests), tries, and publishes the
// reconnect events (events.ReconnectScheduled, ReconnectAttempt, GaveUp).
//
// Every constructor and option validates its input and returns an error
// matching ErrInvalidPolicy (test with errors.Is); none panics.
package retry
