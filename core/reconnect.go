package core

import (
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tetherws/tether/events"
)

// Reconnector is a client's reconnect strategy, the plugin that decides
// whether and when a client dials again after its connection is lost.
// tether.Client's supervisor consults it; retry.Reconnect (the recipe's 1,
// 2, 4, 8, 16 s) is the default, and any other strategy replaces it through
// the same interface (tether.WithReconnector).
type Reconnector interface {
	// Start begins the schedule of one client. It is called once, when
	// the client starts, before its first dial.
	Start(c ClientInfo) (Schedule, error)
}

// ClientInfo is what a reconnect strategy knows of its client.
type ClientInfo struct {
	ID    string          // the client's id, for events
	Clock clockwork.Clock // the client's clock: delays are waited on it
	Bus   *events.Bus     // where the strategy publishes its events, or nil
}

// Schedule is one client's reconnect state. The client's supervisor calls
// its methods from one goroutine, one call at a time, so a Schedule needs
// no lock. The calls follow the client's life:
//
//	Opened (the first connection; with tether.WithRetryFirstDial, a first
//	        dial that failed comes first: Lost, Dialing, ... Opened)
//	  then, for every loss: Lost, Dialing, (Lost, Dialing, ...) Opened
//	  or, for a reconnect the application asked for: Forced, Dialing, ...
//
// A Lost that returns an error ends the client with that error.
type Schedule interface {
	// Opened is called when a connection opened: its handshake is done
	// and, after a reconnect, the client's on-reconnect hook returned
	// nil. h is the connection's handle: an event emitted with core.Emit(h,
	// ...) comes before that connection's Disconnected.
	Opened(h *Handle)

	// Lost is called when the client's connection ended, or an attempt to
	// replace it failed, with why (for a connection, its *CloseError; for
	// an attempt, the dial's error; for an on-reconnect hook that failed
	// on a live connection, the hook's error). It returns how long to wait
	// on the clock before the next attempt, or a non-nil error to give up:
	// the client ends with it.
	Lost(cause error) (time.Duration, error)

	// Forced is called when the application asked for a reconnect now
	// (Client.Reconnect): the current connection, if any, was closed on
	// purpose, or the wait before the next attempt was cut short. Dialing
	// follows at once.
	Forced()

	// Dialing is called when an attempt starts. It returns the attempt's
	// number, counted from 1 since the last connection that worked; the
	// client passes it to its before-dial hook.
	Dialing() int
}
