package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// parkingEcho is an echo server whose handler parks its connection
// whenever there is nothing to read; with idle > 0, a client silent that
// long is dropped (the deadline moves with every read). ended receives
// what each connection's last read returned.
func parkingEcho(idle time.Duration, ended chan<- error) HandlerFunc {
	park := testPark
	var serve func(deadline time.Time) HandlerFunc
	serve = func(deadline time.Time) HandlerFunc {
		return func(ctx context.Context, conn net.Conn) {
			var buf [256]byte
			for {
				if park(ctx, conn, deadline, serve(deadline)) {
					return
				}
				conn.SetReadDeadline(deadline)
				n, err := conn.Read(buf[:])
				if n > 0 {
					conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, werr := conn.Write(buf[:n]); werr != nil {
						err = werr
					}
					if idle > 0 {
						deadline = time.Now().Add(idle)
					}
				}
				if err != nil {
					if ended != nil {
						ended <- err
					}
					return
				}
			}
		}
	}
	return func(ctx context.Context, conn net.Conn) {
		var deadline time.Time
		if idle > 0 {
			deadline = time.Now().Add(idle)
		}
		serve(deadline)(ctx, conn)
	}
}

// testPark is how parkingEcho parks: Park, or ParkSocket for the tests
// run again with it (TestParkSocketKeepsParkingPromises).
var testPark = Park

func startParking(t *testing.T, s *Server) string {
	t.Helper()
	countConns(s)
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	return ln.Addr().String()
}

// Parked connections hold no goroutine, are served again when they
// speak, and end (their handler told, their slot freed) when the client
// leaves.
func TestParkedConnectionsHoldNoGoroutine(t *testing.T) {
	ended := make(chan error, 100)
	s := &Server{Handler: parkingEcho(0, ended)}
	addr := startParking(t, s)
	base := runtime.NumGoroutine()
	var conns []net.Conn
	for range 100 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitParked(t, s, 100)
	// StateParked is told just before each handler's goroutine returns,
	// and a goroutine ends with no event: look until they are few.
	if !testkit.Poll(10*time.Second, func() bool { return runtime.NumGoroutine()-base <= 5 }) {
		t.Fatalf("%d goroutines for 100 parked connections", runtime.NumGoroutine()-base)
	}
	for i, c := range conns {
		msg := fmt.Sprintf("hello %d", i)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	}
	waitParked(t, s, 100)
	for _, c := range conns[:50] {
		c.Close()
	}
	for range 50 {
		if err := <-ended; !errors.Is(err, io.EOF) {
			t.Fatalf("a client's close read as %v", err)
		}
	}
	waitActive(t, s, 50)
	if s.Parked() != 50 {
		t.Fatalf("%d parked after 50 left, want 50", s.Parked())
	}
}

// A parked connection's deadline wakes it: its next read fails with the
// deadline, as a blocked read would have.
func TestParkedDeadline(t *testing.T) {
	ended := make(chan error, 1)
	s := &Server{Handler: parkingEcho(50*time.Millisecond, ended)}
	addr := startParking(t, s)
	// Before the dial: the server sets its deadline after the accept,
	// which may come before the dial returns here (on a loaded machine,
	// 12 ms before it did), never before the dial began.
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-ended; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ended with %v, want the deadline", err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("woken after %s, before its deadline", took)
	}
	waitActive(t, s, 0)
}

// Close ends parked connections: their handlers run, find the connection
// closed and return, and no goroutine is left (goleak, TestMain).
func TestCloseEndsParkedConnections(t *testing.T) {
	ended := make(chan error, 20)
	s := &Server{Handler: parkingEcho(0, ended)}
	ln := listen(t)
	served := make(chan error, 1)
	countConns(s)
	go func() { served <- s.Serve(ln) }()
	for range 20 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitParked(t, s, 20)
	s.Close()
	<-served
	for range 20 {
		if err := <-ended; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ended with %v, want a closed connection", err)
		}
	}
	if s.ActiveConns() != 0 || s.Parked() != 0 {
		t.Fatalf("%d active, %d parked after Close", s.ActiveConns(), s.Parked())
	}
}

// Interrupt wakes a parked connection, whose handler then reads the end
// of file; a connection not served by a Server is not parked.
func TestInterruptAndUnparkable(t *testing.T) {
	ended := make(chan error, 1)
	s := &Server{Handler: parkingEcho(0, ended)}
	var served net.Conn
	got := make(chan net.Conn, 1)
	inner := s.Handler
	s.Handler = HandlerFunc(func(ctx context.Context, c net.Conn) { got <- c; inner.ServeConn(ctx, c) })
	addr := startParking(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	served = <-got
	waitParked(t, s, 1)
	Interrupt(served)
	if err := <-ended; !errors.Is(err, io.EOF) {
		t.Fatalf("interrupted: %v, want the end of file", err)
	}
	if Park(context.Background(), served, time.Time{}, func(context.Context, net.Conn) {}) {
		t.Fatal("parked a connection outside a Server")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if ParkAfter(context.Background(), a) != 0 {
		t.Fatal("ParkAfter for a pipe outside a Server")
	}
}

// The checker: seeded random clients that connect, send in bursts with
// random pauses (some long enough to be parked, some not), half-close or
// vanish at random, against a server that parks whenever a connection has
// nothing to read. Every byte sent is echoed, in order, to its own
// client; every handler ends; nothing is left parked, served or running.
func TestParkingKeepsEveryConversation(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			ended := make(chan error, 64)
			s := &Server{Handler: parkingEcho(0, ended)}
			addr := startParking(t, s)
			rng := rand.New(rand.NewPCG(seed, 22))
			const clients = 24
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i := range clients {
				plan := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
				wg.Go(func() {
					if err := converse(addr, plan); err != nil {
						errs <- fmt.Errorf("seed %d, client %d: %w", seed, i, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for range clients {
				<-ended
			}
			waitActive(t, s, 0)
			if s.Parked() != 0 {
				t.Fatalf("seed %d: %d parked after every client left", seed, s.Parked())
			}
		})
	}
}

// converse is one random client of the checker.
func converse(addr string, rng *rand.Rand) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	for range 1 + rng.IntN(6) {
		if rng.IntN(3) == 0 {
			// A pause (the point of the test): past the parking, or not.
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		}
		msg := make([]byte, 1+rng.IntN(200))
		for i := range msg {
			msg[i] = byte(rng.IntN(256))
		}
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("echo of %d bytes: %w", len(msg), err)
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("echo of %d bytes differs", len(msg))
		}
	}
	if rng.IntN(2) == 0 {
		c.(*net.TCPConn).CloseWrite() // half-close: the server sees the end, then we close
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			return fmt.Errorf("after the half-close: %d bytes, %v", n, err)
		}
	}
	return nil
}

// A graceful shutdown drains parked connections as it drains those that
// hold a goroutine: during the grace period a parked client that speaks is
// served, one that leaves ends; when the grace period ends the rest are
// closed, their handlers told, and nothing is left running (goleak,
// TestMain). Shutdown returns nil when every client leaves within the
// grace period.
func TestShutdownDrainsParkedConnections(t *testing.T) {
	t.Run("grace ends", func(t *testing.T) {
		ended := make(chan error, 3)
		s := &Server{Handler: parkingEcho(0, ended)}
		ln := listen(t)
		served := make(chan error, 1)
		countConns(s)
		go func() { served <- s.Serve(ln) }()
		var conns []net.Conn
		for range 3 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		waitParked(t, s, 3)
		grace, endGrace := context.WithCancel(context.Background())
		shut := make(chan error, 1)
		go func() { shut <- s.Shutdown(grace) }()
		<-s.done // shutting down: no more accepts, the connections drain
		c := conns[0]
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("during the grace")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len("during the grace"))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "during the grace" {
			t.Fatalf("a parked client served during the grace: %q, %v", got, err)
		}
		conns[1].Close()
		if err := <-ended; !errors.Is(err, io.EOF) {
			t.Fatalf("a client that left during the grace ended with %v", err)
		}
		waitParked(t, s, 2)
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with 2 connections parked", err)
		default:
		}
		endGrace()
		if err := <-shut; !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown = %v after the grace ended, want its context's error", err)
		}
		for range 2 {
			if err := <-ended; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("after the grace: ended with %v, want a closed connection", err)
			}
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		if s.ActiveConns() != 0 || s.Parked() != 0 {
			t.Fatalf("%d active, %d parked after Shutdown", s.ActiveConns(), s.Parked())
		}
	})
	t.Run("drained within the grace", func(t *testing.T) {
		ended := make(chan error, 3)
		s := &Server{Handler: parkingEcho(0, ended)}
		ln := listen(t)
		served := make(chan error, 1)
		countConns(s)
		go func() { served <- s.Serve(ln) }()
		var conns []net.Conn
		for range 3 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		waitParked(t, s, 3)
		shut := make(chan error, 1)
		go func() { shut <- s.Shutdown(context.Background()) }()
		<-s.done
		for _, c := range conns {
			c.Close()
		}
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown = %v once every parked client left", err)
		}
		for range 3 {
			if err := <-ended; !errors.Is(err, io.EOF) {
				t.Fatalf("ended with %v, want the client's end of file", err)
			}
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
	})
}

// A full server that makes room (EvictWaiting) may pick a parked
// connection: the victim's handler is woken and ends it, its client reads
// a reset, the parking set forgets it, and the server still stops. A
// victim closed under the parker instead stays in the set for ever (its
// file descriptor gone, soon reused by a newcomer that overwrites it), and
// Close waits on its handler without end.
func TestEvictingAParkedConnection(t *testing.T) {
	ended := make(chan error, 10)
	s := &Server{MaxConns: 2, MaxConnsPerAddr: -1, EvictWaiting: true, Handler: parkingEcho(0, ended)}
	ln := listen(t)
	served := make(chan error, 1)
	countConns(s)
	go func() { served <- s.Serve(ln) }()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	queue := []net.Conn{dial()}
	waitParked(t, s, 1)
	queue = append(queue, dial())
	waitParked(t, s, 2)
	for range 3 { // each newcomer makes room by closing the oldest
		oldest := queue[0]
		queue = append(queue[1:], dial())
		oldest.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := oldest.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the evicted client read %v, want a reset", err)
		}
		select {
		case <-ended: // its handler saw the end
		case <-time.After(10 * time.Second):
			t.Fatal("the evicted connection's handler was never told")
		}
		waitParked(t, s, 2)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: a handler of an evicted parked connection never ended")
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
}

// The ConnState hook tells a parking and its waking: new, parked, active
// (the client spoke), parked again, and closed once the client leaves;
// Parked counts the connection when it is told parked.
func TestConnStateTellsParking(t *testing.T) {
	states := make(chan ConnState, 16)
	parkedAtCall := make(chan int, 16)
	s := &Server{Handler: parkingEcho(0, nil)}
	s.ConnState = func(_ net.Conn, state ConnState) {
		if state == StateParked {
			parkedAtCall <- s.Parked()
		}
		states <- state
	}
	addr := startParking(t, s)
	next := func(want ConnState) {
		t.Helper()
		select {
		case got := <-states:
			if got != want {
				t.Fatalf("state %v, want %v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no state within 10 s, want %v", want)
		}
		if want == StateParked {
			if n := <-parkedAtCall; n != 1 {
				t.Fatalf("Parked = %d when told parked, want 1", n)
			}
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next(StateNew)
	next(StateParked)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("hi"))
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	next(StateActive)
	next(StateParked)
	c.Close()
	next(StateActive)
	next(StateClosed)
}
