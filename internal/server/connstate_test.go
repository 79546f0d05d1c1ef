package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// counts holds each test server's connection gauges, kept by the
// ConnState hook countConns sets.
var counts sync.Map // *Server → *serverGauges

type serverGauges struct {
	open    testkit.Gauge // from StateNew to StateClosed
	changes testkit.Gauge // every state change: a wake-up for waitParked
}

// countConns sets s's ConnState hook (around the test's own, if any)
// before s serves, so that a test can
// wait for a number of open or parked connections (waitActive,
// waitParked) instead of polling ActiveConns or Parked. It returns the
// gauge of open connections.
func countConns(s *Server) *testkit.Gauge {
	v, loaded := counts.LoadOrStore(s, new(serverGauges))
	g := v.(*serverGauges)
	if !loaded {
		test := s.ConnState // a test's own hook, called first
		s.ConnState = func(c net.Conn, state ConnState) {
			if test != nil {
				test(c, state)
			}
			switch state {
			case StateNew:
				g.open.Add(1)
			case StateClosed:
				g.open.Add(-1)
			}
			g.changes.Add(1)
		}
	}
	return &g.open
}

// openConns is the gauge of s's open connections that countConns keeps.
func openConns(t *testing.T, s *Server) *testkit.Gauge {
	t.Helper()
	return &gauges(t, s).open
}

// waitParked waits until s holds n parked connections. Each change of
// Parked is told by a ConnState call after it (StateParked once the
// server holds the connection, StateActive once it has let it go), so
// Parked is looked at again at each.
func waitParked(t *testing.T, s *Server, n int) {
	t.Helper()
	if !gauges(t, s).changes.Wait(10*time.Second, func(int) bool { return s.Parked() == n }) {
		t.Fatalf("%d connections parked, want %d", s.Parked(), n)
	}
}

func gauges(t *testing.T, s *Server) *serverGauges {
	t.Helper()
	v, ok := counts.Load(s)
	if !ok {
		t.Fatal("countConns(s) was not called before s served")
	}
	return v.(*serverGauges)
}

// waitActive waits until s has n connections open.
func waitActive(t *testing.T, s *Server, n int) {
	t.Helper()
	g := openConns(t, s)
	if !g.Wait(10*time.Second, func(m int) bool { return m == n }) {
		t.Fatalf("%d connections open (ActiveConns %d), want %d", g.Load(), s.ActiveConns(), n)
	}
}

// The hook tells each connection's life in order: new, active once the
// handler has its request (Busy), closed once its slot is free, and
// Close returns only after the last call. A connection closed to make
// room goes from new to closed.
func TestConnStateTellsEachChange(t *testing.T) {
	type change struct {
		conn  net.Conn
		state ConnState
	}
	var mu sync.Mutex
	var changes []change
	var activeAtNew, activeAtClosed []int
	var open testkit.Gauge
	ln := newPipeListener()
	var s *Server
	s = &Server{MaxConns: 1, MaxConnsPerAddr: -1, EvictWaiting: true,
		ConnState: func(c net.Conn, state ConnState) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, change{c, state})
			switch state {
			case StateNew:
				activeAtNew = append(activeAtNew, s.ActiveConns())
				open.Add(1)
			case StateClosed:
				activeAtClosed = append(activeAtClosed, s.ActiveConns())
				open.Add(-1)
			}
		},
		Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			Busy(ctx)
			io.WriteString(c, line)
			c.Read(make([]byte, 1)) // until the client or the server closes
		})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	silent := ln.dial(t, "192.0.2.1:1000") // waits for its request: evicted
	defer silent.Close()
	one := func(n int) bool { return n == 1 }
	if !open.Wait(10*time.Second, one) {
		t.Fatal("the silent connection was never served")
	}
	talker := ln.dial(t, "192.0.2.2:1000")
	defer talker.Close()
	io.WriteString(talker, "hi\n")
	if line, _ := bufio.NewReader(talker).ReadString('\n'); line != "hi\n" {
		t.Fatalf("talker got %q", line)
	}
	if !open.Wait(10*time.Second, one) { // the silent one closed, to make room
		t.Fatalf("%d connections open after an eviction, want 1", open.Load())
	}
	s.Close()
	<-served

	mu.Lock()
	defer mu.Unlock()
	var got []ConnState
	byConn := map[net.Conn][]ConnState{}
	for _, c := range changes {
		byConn[c.conn] = append(byConn[c.conn], c.state)
		got = append(got, c.state)
	}
	if len(byConn) != 2 {
		t.Fatalf("changes of %d connections, want 2: %v", len(byConn), got)
	}
	var lives [][]ConnState
	for _, c := range changes {
		if l, ok := byConn[c.conn]; ok {
			lives = append(lives, l)
			delete(byConn, c.conn)
		}
	}
	want := [][]ConnState{{StateNew, StateClosed}, {StateNew, StateActive, StateClosed}}
	if !slices.EqualFunc(lives, want, slices.Equal) {
		t.Fatalf("lives %v, want %v (all changes: %v)", lives, want, got)
	}
	if !slices.Equal(activeAtNew, []int{1, 1}) || slices.Max(activeAtClosed) > 1 || activeAtClosed[len(activeAtClosed)-1] != 0 {
		t.Fatalf("ActiveConns at the new calls %v, at the closed calls %v: want the slot taken at new, free at closed", activeAtNew, activeAtClosed)
	}
}
