// Package tethertest tests code built on tether in simulated time, as
// net/http/httptest does for net/http.
//
//   - Server is an in-memory WebSocket server (real frames, tether's own
//     server stack, no port) whose network can be broken at any moment:
//     Drop, BlackHole one way or both, Delay, CloseAll with a code, Refuse
//     the next handshakes with an HTTP status.
//   - Clock is a clockwork.FakeClock that knows when the code under test
//     is at rest; Clock.Step advances it safely, stopping at every timer on
//     the way.
//   - Recorder records every event of a bus, with simulated timestamps,
//     for exact assertions on the sequence.
//
// The same Server works inside a testing/synctest bubble with tether's
// default real clock: there the bubble fakes time itself and no Step is
// needed. docs/testing.md shows both styles.
package tethertest
