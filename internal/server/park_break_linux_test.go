package server

import (
	"context"
	"net"
	"testing"
	"time"
)

// Break of issue 22, finding 1: Interrupt on a connection whose peer
// reset it. shutdown(SHUT_RD) then fails (ENOTCONN: the socket is
// closed), and Interrupt used to fall back to Close: under a parked
// connection, closing its descriptor takes it out of the readiness set,
// with the wake-up the reset queued there if the loop has not taken it
// yet. The connection is then never handed back: its slot and its place
// in the drain are held until Close (and for ever if its descriptor
// number is reused by a connection that parks in its place). A watcher
// whose write fails on a reset client (sharedstring.update) and an
// evicted victim that reset first both do exactly this. The invariant:
// Interrupt never closes a connection, and a parked one, reset and
// interrupted, is always handed back to its handler.
func TestInterruptResetParkedIsHandedBack(t *testing.T) {
	ended := make(chan error, 1)
	s := &Server{Handler: parkingEcho(0, ended)}
	got := make(chan net.Conn, 1)
	inner := s.Handler
	s.Handler = HandlerFunc(func(ctx context.Context, c net.Conn) { got <- c; inner.ServeConn(ctx, c) })
	addr := startParking(t, s)
	const rounds = 200
	for i := range rounds {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		served := <-got
		waitParked(t, s, 1)
		// A reset: on loopback the server's socket is closed (TCP_CLOSE)
		// when Close returns, and the set's wake-up is queued.
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		Interrupt(served)
		select {
		case <-ended:
		case <-time.After(10 * time.Second): // only the failure waits this long
			t.Fatalf("round %d of %d: a reset, interrupted, parked connection was never handed back (%d parked)", i, rounds, s.Parked())
		}
	}
}
