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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"golang.org/x/sys/unix"
)

// parkedForWriting is a server whose handler parks every connection with
// ParkSocket and hands its context to the test on ctxs, for Write; woken
// (its client sent, closed or reset, or it was interrupted), the handler
// reads once and ends the connection, sending what the read returned on
// ended. Its send buffer is small and fixed (no autotuning), so that a
// client that does not read fills it soon.
func parkedForWriting(ctxs chan<- context.Context, ended chan<- error) *Server {
	return &Server{MaxConnsPerAddr: -1, Handler: HandlerFunc(func(ctx context.Context, conn net.Conn) {
		conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
		ctxs <- ctx
		if !ParkSocket(ctx, conn, time.Time{}, func(_ context.Context, conn net.Conn) {
			_, err := conn.Read(make([]byte, 1))
			ended <- err
		}) {
			ended <- errors.New("not parked")
		}
	})}
}

// dialSmall dials addr with a small receive buffer (the kernel's least),
// so that a client that does not read fills the server's socket buffer
// soon and a write to it would block (EAGAIN).
func dialSmall(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1024) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// lentNow is how many writes are being finished through a copy of a bare
// socket (Write's slow path): the server's own state, which gives no
// event.
func lentNow(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lent)
}

// pattern is n bytes that differ from one offset to the next within a
// stream (seed tells streams apart), so a byte lost, doubled or out of
// place shows.
func pattern(seed uint64, off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		x := uint64(off+i)*0x9e3779b97f4a7c15 + seed
		b[i] = byte(x >> 56)
	}
	return b
}

// Issue 22, watchers: code other than the handler writes to a connection
// parked as a bare socket through Write, and the connection stays bare: a
// write the socket buffer takes at once is one send(2); one it cannot
// take (a client not reading) is finished through a copy of the socket
// that is closed after, and the client gets every byte in order. An
// InterruptServed through the same context ends it, bare: its handler
// wakes with the end of file. The process holds the descriptors it held
// before (the copy closed). (Before: no way to write to a bare socket;
// a watcher had to keep its net.Conn.)
func TestWriteToABareSocket(t *testing.T) {
	defer detachSoon()()
	ctxs := make(chan context.Context, 1)
	ended := make(chan error, 1)
	s := parkedForWriting(ctxs, ended)
	addr := startParking(t, s)
	c := dialSmall(t, addr)
	ctx := <-ctxs
	waitBare(t, s, 1)
	fds := openFDs(t)

	if n, err := Write(ctx, []byte("hello"), 10*time.Second); n != 5 || err != nil {
		t.Fatalf("Write to a bare socket = %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("the client read %q, %v", got, err)
	}
	if s.ParkedBare() != 1 {
		t.Fatal("a write to a bare socket made it a net.Conn again")
	}

	const big = 4 << 20
	want := pattern(1, 0, big)
	wrote := make(chan error, 1)
	go func() {
		n, err := Write(ctx, want, time.Hour)
		if err == nil && n != big {
			err = fmt.Errorf("wrote %d bytes of %d", n, big)
		}
		wrote <- err
	}()
	// The client reads nothing until the socket buffer is full and the
	// rest is being written through a copy.
	if !testkit.Poll(10*time.Second, func() bool { return lentNow(s) == 1 }) {
		t.Fatal("a write a bare socket could not take at once was not finished through a copy")
	}
	got = make([]byte, big)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the client read %d bytes (%v), not the %d written, in order", len(got), err, big)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if s.ParkedBare() != 1 || lentNow(s) != 0 {
		t.Fatalf("after a long write: %d bare, %d copies lent; want 1 bare and none lent", s.ParkedBare(), lentNow(s))
	}
	// More would be a copy left open; fewer, other tests' sockets closed
	// meanwhile (their cleanups, finalizers).
	if after := openFDs(t); after > fds {
		t.Fatalf("%d descriptors open after the write, %d before", after, fds)
	}

	InterruptServed(ctx, false)
	if err := <-ended; !errors.Is(err, io.EOF) {
		t.Fatalf("the interrupted bare socket's handler read %v, want the end of file", err)
	}
	waitActive(t, s, 0)
}

// A write finished through a copy of a bare socket, to a client that
// reads nothing, ends when the server closes, not at its write deadline:
// Close closes the copy too.
func TestCloseEndsAWriteToABareSocket(t *testing.T) {
	defer detachSoon()()
	ctxs := make(chan context.Context, 1)
	ended := make(chan error, 1)
	s := parkedForWriting(ctxs, ended)
	addr := startParking(t, s)
	dialSmall(t, addr)
	ctx := <-ctxs
	waitBare(t, s, 1)
	wrote := make(chan error, 1)
	go func() {
		_, err := Write(ctx, make([]byte, 4<<20), time.Hour)
		wrote <- err
	}()
	if !testkit.Poll(10*time.Second, func() bool { return lentNow(s) == 1 }) {
		t.Fatal("no write through a copy")
	}
	s.Close()
	if err := <-wrote; err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write under Close: %v, want the connection closed", err)
	}
	<-ended
}

// Checker: writers write numbered streams through Write to connections
// parked with ParkSocket (bare, being detached, or woken), while their
// clients read at their own pace through small receive buffers (so
// writes hit a full socket buffer), some reset their connection, some
// writers end theirs (InterruptServed), and the server is closed or shut
// down. Every client reads an exact prefix of its stream (all of it,
// unless it or the server ended first); a writer fails only for an
// ended connection; every handler ends; the process holds exactly the
// descriptors it held before. Goroutines: goleak, TestMain. The seed is
// printed: TCPLAB_PARKWRITE_SEED=N replays it.
func TestWriteParkedChecker(t *testing.T) {
	defer detachSoon()()
	// The runtime's own poller descriptors, made once.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	testkit.RunSeeds(t, "TCPLAB_PARKWRITE_SEED", 2, checkWriteParked)
}

func checkWriteParked(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 22))
	before := openFDs(t)
	const n = 8
	ctxs := make(chan context.Context, n)
	ended := make(chan error, n)
	s := parkedForWriting(ctxs, ended)
	countConns(s)
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	type client struct {
		c      *net.TCPConn
		ctx    context.Context
		stream int // bytes to write
		reset  bool
		stop   bool // its writer interrupts it halfway
		read   chan error
		wrote  chan error
		total  int
	}
	clients := make([]*client, n)
	for i := range clients {
		cl := &client{c: dialSmall(t, ln.Addr().String()), stream: 1 + rng.IntN(512<<10),
			read: make(chan error, 1), wrote: make(chan error, 1)}
		cl.ctx = <-ctxs
		switch rng.IntN(5) {
		case 0:
			cl.reset = true
		case 1:
			cl.stop = true
		}
		clients[i] = cl
	}
	if rng.IntN(2) == 0 {
		waitBare(t, s, n) // all bare before the first write; else some detach under it
	}
	closeAt := -1 // the server closes before writer closeAt is done, if set
	if rng.IntN(3) == 0 {
		closeAt = rng.IntN(n)
	}
	var wg sync.WaitGroup
	for i, cl := range clients {
		chunks := rand.New(rand.NewPCG(seed, uint64(i)))    // the writer's
		reading := rand.New(rand.NewPCG(seed, uint64(i+n))) // the client's
		pause := time.Duration(rng.IntN(3)) * time.Millisecond
		wg.Go(func() {
			// The client: reads what comes, pausing between reads (the
			// pause is the point: a slow reader), until the end of file
			// or, for one that resets, a random point.
			stopAt := cl.stream
			if cl.reset {
				stopAt = reading.IntN(cl.stream)
			}
			buf := make([]byte, 1+reading.IntN(64<<10))
			cl.c.SetReadDeadline(time.Now().Add(time.Minute))
			for {
				if cl.total >= stopAt && cl.reset {
					cl.c.SetLinger(0)
					cl.c.Close()
					cl.read <- nil
					return
				}
				k, err := cl.c.Read(buf)
				if k > 0 && !bytes.Equal(buf[:k], pattern(uint64(i), cl.total, k)) {
					cl.read <- fmt.Errorf("client %d: bytes %d to %d are not its stream's", i, cl.total, cl.total+k)
					return
				}
				cl.total += k
				if err != nil {
					cl.read <- err
					return
				}
				time.Sleep(pause) // the pace is the point: a slow reader
			}
		})
		wg.Go(func() {
			// The writer: its stream in chunks of random sizes, each one
			// Write; then it ends the connection, as a watcher's writer
			// ends one that failed.
			off := 0
			var err error
			for off < cl.stream && err == nil {
				if cl.stop && off > cl.stream/2 {
					break
				}
				k := min(cl.stream-off, 1+chunks.IntN(64<<10))
				var m int
				m, err = Write(cl.ctx, pattern(uint64(i), off, k), 30*time.Second)
				if err == nil && m != k {
					err = fmt.Errorf("wrote %d of %d", m, k)
				}
				off += m
			}
			InterruptServed(cl.ctx, false)
			cl.wrote <- err
		})
	}
	if closeAt >= 0 {
		<-clients[closeAt].wrote
		clients[closeAt].wrote <- nil
		s.Close()
	}
	for i, cl := range clients {
		werr := <-cl.wrote
		if werr != nil && !cl.reset && closeAt < 0 {
			t.Errorf("seed %d: writer %d: %v", seed, i, werr)
		}
	}
	for i, cl := range clients {
		rerr := <-cl.read
		switch {
		case rerr != nil && !errors.Is(rerr, io.EOF) && !cl.reset && closeAt < 0:
			t.Errorf("seed %d: client %d: %v", seed, i, rerr)
		case !cl.reset && !cl.stop && closeAt < 0 && cl.total != cl.stream:
			t.Errorf("seed %d: client %d read %d bytes of its %d", seed, i, cl.total, cl.stream)
		}
	}
	wg.Wait()
	for range n {
		<-ended
	}
	if closeAt < 0 {
		waitActive(t, s, 0)
		if rng.IntN(2) == 0 {
			s.Shutdown(context.Background())
		}
	}
	s.Close()
	<-served
	for _, cl := range clients {
		cl.c.Close()
	}
	// More would be a leak; fewer, other tests' sockets closed meanwhile.
	if after := openFDs(t); after > before {
		t.Fatalf("seed %d: %d descriptors open after the server closed, %d before", seed, after, before)
	}
}

// The cost of a watcher's frame (64 bytes) written with Write to a
// connection parked as a bare socket (one send(2) under the server's
// lock), against one parked with its net.Conn (Write through it, with its
// write deadline), the client reading all the while.
// docs/reliability.md has the figures.
func BenchmarkWriteParked(b *testing.B) {
	for _, bare := range []bool{false, true} {
		name := "conn"
		if bare {
			name = "bare"
		}
		b.Run(name, func(b *testing.B) {
			defer detachAfterFor(time.Hour)()
			park := Park
			if bare {
				park = ParkSocket
				detachAfter.Store(0)
			}
			ctxs := make(chan context.Context, 1)
			s := &Server{Handler: HandlerFunc(func(ctx context.Context, conn net.Conn) {
				ctxs <- ctx
				park(ctx, conn, time.Time{}, func(_ context.Context, conn net.Conn) { conn.Read(make([]byte, 1)) })
			})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- s.Serve(ln) }()
			defer func() { s.Close(); <-served }()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			go io.Copy(io.Discard, c)
			ctx := <-ctxs
			want := 0
			if bare {
				want = 1
			}
			if !testkit.Poll(10*time.Second, func() bool { return s.Parked() == 1 && s.ParkedBare() == want }) {
				b.Fatalf("%d parked, %d bare; want 1 and %d", s.Parked(), s.ParkedBare(), want)
			}
			frame := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Write(ctx, frame, 10*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
