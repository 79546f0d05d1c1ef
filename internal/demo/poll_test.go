package demo

import (
	"strings"
	"testing"
)

// Issue 22: the poll lesson shows the saving on its own server: with its
// handler parking, the same idle connections are held on no goroutine
// each, for less Go memory than one goroutine's each.
func TestPollParked(t *testing.T) {
	o, _ := run[*pollObservations](t, lessonPoll)
	if o.Parked != o.Conns {
		t.Errorf("parked %d of %d idle connections", o.Parked, o.Conns)
	}
	if o.ParkedGoroutines >= o.Conns/10 {
		t.Errorf("%d more goroutines for %d parked connections", o.ParkedGoroutines, o.Conns)
	}
	if o.ParkedGoBytesPerConn <= 0 || o.ParkedGoBytesPerConn >= o.GoBytesPerConn {
		t.Errorf("parked: %d bytes of Go memory per connection, blocked in Read: %d", o.ParkedGoBytesPerConn, o.GoBytesPerConn)
	}
	if o.ParkedEchoRTT <= 0 {
		t.Error("no echo timed on a parked connection")
	}
}

// Issue 22: the poll lesson's third step parks the same idle connections
// with server.ParkSocket and waits (on the server's own count) until all
// of them are bare sockets: no goroutine, no net.Conn, and less Go memory
// per connection than parked with Park, which keeps the net.Conn. The
// clients are raw sockets, so the figures are the server's end alone.
func TestPollParkedBare(t *testing.T) {
	o, out := run[*pollObservations](t, lessonPoll)
	if o.Conns == 0 {
		t.Skip("the descriptor limit leaves room for no idle connection")
	}
	if o.Bare != o.Conns {
		t.Errorf("%d of %d idle connections parked as bare sockets", o.Bare, o.Conns)
	}
	if o.BareGoroutines >= o.Conns/10 {
		t.Errorf("%d more goroutines for %d bare sockets", o.BareGoroutines, o.Conns)
	}
	if o.BareGoBytesPerConn <= 0 || o.BareGoBytesPerConn >= o.ParkedGoBytesPerConn {
		t.Errorf("bare: %d bytes of Go memory per connection, parked with its net.Conn: %d", o.BareGoBytesPerConn, o.ParkedGoBytesPerConn)
	}
	if o.BareEchoRTT <= 0 {
		t.Error("no echo timed on a connection woken from a bare socket")
	}
	if !strings.Contains(out, "server.ParkSocket") || !strings.Contains(out, "server's end") {
		t.Errorf("the lesson does not say what it parks bare, or what its figures count:\n%s", out)
	}
}
