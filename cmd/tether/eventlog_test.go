package main

import (
	"testing"
	"time"
)

// plugged is an event of a type the command does not know, as a plugin
// would publish.
type plugged struct{ conn string }

func (plugged) Topic() string    { return "ratelimit.limited" }
func (e plugged) Source() string { return e.conn }
func (plugged) Time() time.Time  { return time.Time{} }

// The event log prints an event it does not know with its topic and what
// it is about, in text and in JSON.
func TestDescribeAnUnknownEvent(t *testing.T) {
	text, fields := describe(plugged{conn: "client.1"})
	if text != "ratelimit.limited client.1" || fields["source"] != "client.1" {
		t.Fatalf("describe = %q, %v", text, fields)
	}
	if text, fields := describe(plugged{}); text != "ratelimit.limited" || len(fields) != 0 {
		t.Fatalf("describe without a source = %q, %v", text, fields)
	}
}
