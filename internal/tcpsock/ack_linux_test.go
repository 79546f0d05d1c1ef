package tcpsock

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// await is the wait under test (the rule tests were run against the two
// waits it replaced, see the commit that brought it).
var await = AwaitAcked

// pair is a connected pair on 127.0.0.1:0: w writes, r is the peer.
// r's receive buffer and w's send buffer are small, so a peer that does
// not read closes its window soon and little is queued.
func pair(t *testing.T) (w, r *net.TCPConn) { return pairBuf(t, 4096, 16<<10) }

// pairBuf is pair with r's receive buffer and w's send buffer of the
// sizes given (the kernel doubles each).
func pairBuf(t *testing.T, rcvbuf, sndbuf int) (w, r *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		c.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
		return nil
	}}
	rc, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	wc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close(); wc.Close() })
	wc.(*net.TCPConn).SetWriteBuffer(sndbuf)
	return wc.(*net.TCPConn), rc.(*net.TCPConn)
}

// fill writes to w until its send buffer is full (the kernel says
// EAGAIN), the peer's window being closed: what is queued then stays
// unacknowledged until the peer reads. It returns how much it wrote.
func fill(t *testing.T, w *net.TCPConn) int {
	t.Helper()
	raw, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	total := 0
	var werr error
	raw.Write(func(fd uintptr) bool {
		for {
			n, err := unix.Write(int(fd), buf)
			if n > 0 {
				total += n
			}
			if err != nil {
				if err != unix.EAGAIN {
					werr = err
				}
				return true // never park: full is what was asked for
			}
		}
	})
	if werr != nil {
		t.Fatal(werr)
	}
	return total
}

func queued(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	st, err := ReadStats(c)
	if err != nil {
		t.Fatal(err)
	}
	return st.SendQueued
}

// waitEnded waits, on the kernel's own event (poll: POLLHUP or POLLERR,
// which leave the socket's error in place), until c's connection is
// over.
func waitEnded(t *testing.T, c *net.TCPConn) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		for {
			n, err := unix.Poll(fds, 10_000)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				t.Errorf("the connection did not end within 10 s: %v", err)
			}
			if fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 || n == 0 {
				return
			}
			// POLLRDHUP alone: the peer's FIN, not the end yet.
			fds[0].Events = 0
		}
	})
}

// within runs f and fails the test if it has not returned within 30 s:
// the rule says each of these waits ends at once, on an event.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("AwaitAcked still waiting after 30 s")
		return nil
	}
}

// SIOCOUTQ counts the FIN: half-closing a connection whose peer has
// acknowledged nothing of the last bytes adds one to the send queue.
// (stream.TCPStats's doc said a FIN counted as nothing, status's
// awaitTaken that it counted as one.)
func TestSendQueueCountsTheFIN(t *testing.T) {
	w, _ := pair(t)
	fill(t, w)
	before := queued(t, w)
	if err := w.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if after := queued(t, w); after != before+1 {
		t.Fatalf("send queue %d before the FIN, %d after; want one more", before, after)
	}
}

// Done once the peer's kernel has acknowledged the bytes and the FIN,
// though the peer's program keeps its socket open.
func TestAwaitAckedWhenThePeerHasEverything(t *testing.T) {
	w, r := pair(t)
	sent := fill(t, w)
	if err := w.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	read := make(chan int64, 1)
	go func() { n, _ := io.Copy(io.Discard, r); read <- n }()
	if err := within(t, func() error { return await(context.Background(), w, 0, nil) }); err != nil {
		t.Fatalf("AwaitAcked: %v", err)
	}
	if n := <-read; n != int64(sent) {
		t.Fatalf("peer read %d bytes, %d sent", n, sent)
	}
	if q := queued(t, w); q != 0 {
		t.Fatalf("send queue %d after AwaitAcked", q)
	}
}

// A reset after everything was acknowledged changes nothing: success,
// whether the reset arrived before the wait looked or not. (multicopy's
// finAcked reported the connection's reset error here.)
func TestAwaitAckedResetAfterEverything(t *testing.T) {
	w, r := pair(t)
	fill(t, w)
	w.CloseWrite()
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	r.SetLinger(0)
	r.Close() // a reset: the peer had read everything, the end included
	waitEnded(t, w)
	if err := await(context.Background(), w, 0, nil); err != nil {
		t.Fatalf("AwaitAcked after a reset that came after everything: %v", err)
	}
}

// A reset before everything was acknowledged ends the wait at once with
// ECONNRESET, whether the peer half-closed first or not, and whether a
// read on the connection took the error first or not. (status's
// awaitTaken, after the peer's half-close, waited out its deadline.)
func TestAwaitAckedResetBeforeEverything(t *testing.T) {
	for _, tc := range []struct {
		name              string
		peerHalfCloses    bool
		readerTakesTheErr bool
	}{
		{"reset", false, false},
		{"half-close, then reset", true, false},
		{"reset seen by a reader first", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, r := pair(t)
			fill(t, w)
			w.CloseWrite()
			if tc.peerHalfCloses {
				r.CloseWrite()
				if _, err := w.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("read after the peer's half-close: %v, want EOF", err)
				}
			}
			r.SetLinger(0)
			r.Close()
			waitEnded(t, w)
			if tc.readerTakesTheErr {
				if _, err := w.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("read after the reset: %v", err)
				}
			}
			err := within(t, func() error { return await(context.Background(), w, 0, nil) })
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("AwaitAcked after a reset with bytes unacknowledged: %v, want ECONNRESET", err)
			}
		})
	}
}

// A peer that acknowledges nothing ends the wait after idle; one that
// goes on reading is given idle more after each acknowledgement.
func TestAwaitAckedIdle(t *testing.T) {
	w, _ := pair(t)
	fill(t, w)
	w.CloseWrite()
	// The pause is the point: idle must pass with nothing acknowledged.
	err := await(context.Background(), w, 50*time.Millisecond, nil)
	if !errors.Is(err, ErrNoProgress) {
		t.Fatalf("AwaitAcked with a peer that reads nothing: %v, want ErrNoProgress", err)
	}

	// A peer reading slowly: every pace, all it holds. The wait lasts
	// as long as the reading, longer than idle. The peer's receive
	// buffer (256 kB) holds several loopback segments of 64 kB, so the
	// window reopens on each read (a tiny one reopens only on the
	// sender's zero-window probes, which back off past any idle), and
	// the send buffer takes the whole 2 MB at once: most of it is still
	// to be read when the wait starts, eight reads at least.
	const pace, idle = 150 * time.Millisecond, 600 * time.Millisecond
	w, r := pairBuf(t, 128<<10, 4<<20)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			time.Sleep(pace) // the point: a slow reader
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
	const sent = 2 << 20
	if _, err := w.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	w.CloseWrite()
	start := time.Now()
	if err := within(t, func() error { return await(context.Background(), w, idle, nil) }); err != nil {
		t.Fatalf("AwaitAcked with a slow reader: %v (after %s)", err, time.Since(start))
	}
	took := time.Since(start)
	t.Logf("%d bytes sent, the last taken after %s", sent, took)
	if took < idle {
		t.Fatalf("the slow reader took only %s, less than idle (%s): the test shows nothing", took, idle)
	}
}

// ctx ends the wait with its cause; wake makes it look again at once, and
// a closed wake is no busy loop.
func TestAwaitAckedContextAndWake(t *testing.T) {
	w, r := pair(t)
	fill(t, w)
	w.CloseWrite()
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stopped")
	wake := make(chan struct{})
	close(wake)
	done := make(chan error, 1)
	go func() { done <- await(ctx, w, 0, wake) }()
	cancel(stop)
	if err := <-done; !errors.Is(err, stop) {
		t.Fatalf("AwaitAcked after cancel: %v, want the cause", err)
	}
	io.Copy(io.Discard, r)
	if err := await(context.Background(), w, 0, wake); err != nil {
		t.Fatal(err)
	}
}
