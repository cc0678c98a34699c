// Package goid tells the current goroutine's id.
//
// tether needs it in two rare places, never per frame: a Conn's Close and an
// events.Bus's Wait must not wait for their own goroutine (a Close called
// from a message handler would otherwise wait for the handler to return). The
// alternative, a flag stored around every handler call, costs two atomic
// stores per frame on the hot path; parsing runtime.Stack is paid once per
// connection and once per Close instead.
package goid

import "runtime"

// Get returns the id of the calling goroutine, or 0 if it cannot be parsed.
func Get() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	// "goroutine 123 [running]:..."
	const prefix = "goroutine "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	var id uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
