package demo

import "testing"

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
