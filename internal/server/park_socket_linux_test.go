package server

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// The promises of Park hold for ParkSocket too: the parking tests run
// again with connections parked as bare sockets, among them the seeded
// checker of whole conversations, the deadline, Close and Shutdown with
// connections parked, and making room by closing a parked connection.
func TestParkSocketKeepsParkingPromises(t *testing.T) {
	defer func(p func(context.Context, net.Conn, time.Time, HandlerFunc) bool) { testPark = p }(testPark)
	testPark = ParkSocket
	// Made bare sockets at once (the loop's next pass but one), so that
	// the tests meet them bare as well as not yet.
	defer detachSoon()()
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"hold no goroutine", TestParkedConnectionsHoldNoGoroutine},
		{"deadline", TestParkedDeadline},
		{"close", TestCloseEndsParkedConnections},
		{"conversations", TestParkingKeepsEveryConversation},
		{"shutdown", TestShutdownDrainsParkedConnections},
		{"evict", TestEvictingAParkedConnection},
		{"storm under close", TestParkStormUnderClose},
		{"deadline and bytes", TestParkDeadlineAndReadinessTogether},
	} {
		t.Run(tc.name, tc.test)
	}
}

// A connection parked with ParkSocket keeps no net.Conn: the handler's
// conn is closed as soon as it is parked (so Go's poll descriptor, netFD
// and addresses are free), and the function it named is given another
// net.Conn of the same type, for the same socket, with the same peer,
// that reads what the client sent. The socket itself is not closed: the
// client sees no end of file or reset while it is parked.
func TestParkSocketLetsGoOfTheConn(t *testing.T) {
	first := make(chan net.Conn, 1)
	second := make(chan net.Conn, 1)
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, conn net.Conn) {
		first <- conn
		if !ParkSocket(ctx, conn, time.Time{}, func(ctx context.Context, conn net.Conn) {
			second <- conn
			var buf [64]byte
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			n, err := conn.Read(buf[:])
			if err == nil {
				conn.Write(buf[:n])
			}
		}) {
			t.Error("ParkSocket did not park a silent TCP connection")
		}
	})}
	defer detachSoon()()
	addr := startParking(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := <-first
	waitBare(t, s, 1)
	if _, err := old.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the parked handler's conn reads %v, want it closed", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("still there")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("still there"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "still there" {
		t.Fatalf("echo after parking: %q, %v", got, err)
	}
	now := <-second
	if now == old {
		t.Fatal("next was given the closed conn")
	}
	if _, ok := now.(*net.TCPConn); !ok {
		t.Fatalf("next was given a %T, want a *net.TCPConn", now)
	}
	if now.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("next's conn is from %s, want the client, %s", now.RemoteAddr(), c.LocalAddr())
	}
	waitActive(t, s, 0)
}

// A connection that is not TCP (a Unix socket) is parked by ParkSocket as
// by Park: next is given the same conn.
func TestParkSocketKeepsAUnixConn(t *testing.T) {
	ln, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	same := make(chan bool, 1)
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, conn net.Conn) {
		if !ParkSocket(ctx, conn, time.Time{}, func(_ context.Context, next net.Conn) { same <- next == conn }) {
			t.Error("ParkSocket did not park a silent Unix connection")
		}
	})}
	served := make(chan error, 1)
	countConns(s)
	go func() { served <- s.Serve(ln) }()
	defer func() { s.Close(); <-served }()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitParked(t, s, 1)
	c.Write([]byte("x"))
	if !<-same {
		t.Fatal("a Unix conn was replaced")
	}
}

// The net.Conn a connection parked with ParkSocket comes back as has the
// server's detection of a vanished peer (keep-alive and user timeout),
// not what net.FileConn sets on a new conn (keep-alive after 15 s, every
// 15 s, 9 probes), given or turned off.
func TestParkSocketKeepsTheServersKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name string
		ka   net.KeepAliveConfig
		user time.Duration
		want [5]int
	}{
		{"given", net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: 2 * time.Second, Count: 3}, 4 * time.Second, [5]int{1, 1, 2, 3, 4000}},
		{"off", net.KeepAliveConfig{Idle: -1}, -1, [5]int{0, -1, -1, -1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan [5]int, 1)
			s := &Server{KeepAlive: tc.ka, UserTimeout: tc.user, Handler: HandlerFunc(func(ctx context.Context, conn net.Conn) {
				ParkSocket(ctx, conn, time.Time{}, func(_ context.Context, conn net.Conn) {
					var o [5]int
					o[0], o[1], o[2], o[3], o[4] = sockopts(t, conn)
					got <- o
				})
			})}
			defer detachSoon()()
			addr := startParking(t, s)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			waitBare(t, s, 1)
			c.Write([]byte("x"))
			o := <-got
			if o[0] == 0 {
				// Off: the timings are not used (nor set).
				o[1], o[2], o[3] = -1, -1, -1
			}
			if o != tc.want {
				t.Fatalf("after parking: keepalive %d idle %d s interval %d s count %d user timeout %d ms; want %v", o[0], o[1], o[2], o[3], o[4], tc.want)
			}
		})
	}
}

// detachSoon makes connections parked by ParkSocket bare sockets at the
// parking loop's next pass but one, until the function it returns is
// called.
func detachSoon() (restore func()) { return detachAfterFor(0) }

// detachAfterFor sets detachAfter to d until the function it returns is
// called.
func detachAfterFor(d time.Duration) (restore func()) {
	old := detachAfter.Swap(int64(d))
	return func() { detachAfter.Store(old) }
}

// waitBare waits until s holds n connections as bare sockets: the
// server's own state, which gives no event.
func waitBare(t *testing.T, s *Server, n int) {
	t.Helper()
	bare := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := 0
		for tr := range s.conns {
			if tr.bare != nil {
				k++
			}
		}
		return k
	}
	for deadline := time.Now().Add(10 * time.Second); bare() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections parked as bare sockets, want %d", bare(), n)
		}
	}
}

// A connection parked by ParkSocket that speaks within detachAfter of
// its parking keeps its net.Conn: a client that sends its first bytes
// soon after it connects (most do) is not made a bare socket and back.
func TestParkSocketDetachesOnlyTheSilent(t *testing.T) {
	defer detachAfterFor(time.Hour)() // "soon", on a loaded machine too
	got := make(chan net.Conn, 2)
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, conn net.Conn) {
		got <- conn
		ParkSocket(ctx, conn, time.Time{}, func(_ context.Context, next net.Conn) {
			got <- next
			next.Read(make([]byte, 1))
		})
	})}
	addr := startParking(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := <-got
	waitParked(t, s, 1)
	c.Write([]byte("x"))
	if next := <-got; next != first {
		t.Fatal("a connection that spoke at once was given a new net.Conn")
	}
}
