package server

import (
	"context"
	"net"
	"testing"
	"time"
	"unsafe"
)

// Break of issue 22 (brk22), finding 1: a client that resets its
// connection while it is parked as a bare socket. The socket is then
// closed in the kernel (TCP_CLOSE) and getpeername fails (ENOTCONN), so
// the net.Conn that net.FileConn rebuilds has a nil RemoteAddr: every
// handler that logs conn.RemoteAddr().String() panics, and so does the
// server's own recovery, which logs the same, taking the process down.
// The invariant: the conn a bare socket comes back as always has both
// addresses, the client's being the one it connected from.
func TestParkSocketResetWhileBareKeepsItsAddress(t *testing.T) {
	defer detachSoon()()
	got := make(chan net.Addr, 1)
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, conn net.Conn) {
		ParkSocket(ctx, conn, time.Time{}, func(_ context.Context, conn net.Conn) {
			got <- conn.RemoteAddr()
			conn.Read(make([]byte, 1))
		})
	})}
	addr := startParking(t, s)
	for i := range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		waitBare(t, s, 1)
		from := c.LocalAddr().String()
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // a reset
		a := <-got
		if a == nil || a.String() != from {
			t.Fatalf("round %d: a bare socket reset by its client came back from %v, want %s", i, a, from)
		}
		waitActive(t, s, 0)
	}
}

// The port detach keeps fits in the parking record's padding: a parked
// connection costs what it did (docs/reliability.md).
func TestParkedRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(parked{}); n != 64 {
		t.Fatalf("a parking record is %d bytes, want 64", n)
	}
}
