// Package reliability holds no library code: its tests run a tether client
// and a tether server over real loopback TCP through Shopify's toxiproxy,
// in process, and inject the faults connections meet in the wild: latency
// and jitter, a black hole, resets, tiny TCP segments, a bandwidth limit,
// the server killed and restarted, and a soak of many clients under random
// faults. See docs/reliability.md for what they prove and the figures they
// print.
//
// It is a module of its own (github.com/tetherws/tether/reliability, with a
// replace to ../), so that toxiproxy and its dependencies stay out of the
// library's go.mod; the root's go test ./... does not reach it. From this
// directory, the quick versions run with go test -race ./... . The long ones
// (100 restarts, 50 black-hole trials, a soak of 200 clients for minutes)
// run when TETHER_LONG=1 is set or -long is passed, and never under -short:
//
//	TETHER_LONG=1 go test -race -timeout 900s -v ./...
package reliability
