package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"golang.org/x/sys/unix"
)

// Break of issue 22 (brk22c): a write to a bare socket that its buffer
// cannot take at once, while the process is out of descriptors (silent
// connections fill the table), cannot lend a copy of the socket: Write
// failed at once with EMFILE, after part of the bytes had been sent, so
// a watcher's frame was torn and the watcher dropped, though its client
// was reading. The invariant: a client that takes the bytes gets them
// all, in order, out of descriptors or not; only a client that takes
// none for the timeout fails the write (with os.ErrDeadlineExceeded, on
// which strsvr resets it).
func TestWriteToABareSocketOutOfDescriptors(t *testing.T) {
	defer detachSoon()()
	ctxs := make(chan context.Context, 1)
	ended := make(chan error, 1)
	s := parkedForWriting(ctxs, ended)
	addr := startParking(t, s)
	c := dialSmall(t, addr)
	ctx := <-ctxs
	waitBare(t, s, 1)

	const big = 1 << 20
	want := pattern(7, 0, big)
	err := runOutOfDescriptors(t, func() error {
		wrote := make(chan error, 1)
		go func() {
			n, err := Write(ctx, want, 10*time.Second)
			if err == nil && n != big {
				err = fmt.Errorf("wrote %d bytes of %d", n, big)
			}
			wrote <- err
		}()
		got := make([]byte, big)
		read := make(chan error, 1)
		go func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err := io.ReadFull(c, got)
			read <- err
		}()
		if err := <-wrote; err != nil {
			c.Close() // the rest never comes: the reader ends
			<-read
			return fmt.Errorf("Write out of descriptors, to a client reading: %w", err)
		}
		switch rerr := <-read; {
		case rerr != nil || !bytes.Equal(got, want):
			return fmt.Errorf("the client read %v, not the %d bytes written, in order", rerr, big)
		}
		// A client that takes nothing fails the write at the timeout,
		// still out of descriptors.
		if _, err := Write(ctx, want, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("Write out of descriptors, to a client not reading: %v, want the deadline exceeded", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	InterruptServed(ctx, false)
	<-ended
	waitActive(t, s, 0)
}

// A write to a bare socket waiting, out of descriptors, for a client that
// reads nothing ends when the server closes, not at its timeout.
func TestCloseEndsAWriteToABareSocketOutOfDescriptors(t *testing.T) {
	defer detachSoon()()
	ctxs := make(chan context.Context, 1)
	ended := make(chan error, 1)
	s := parkedForWriting(ctxs, ended)
	addr := startParking(t, s)
	dialSmall(t, addr)
	ctx := <-ctxs
	waitBare(t, s, 1)
	err := runOutOfDescriptors(t, func() error {
		wrote := make(chan error, 1)
		go func() {
			_, err := Write(ctx, pattern(8, 0, 4<<20), time.Hour)
			wrote <- err
		}()
		// Once the socket buffer is full, Write waits for the client.
		if !testkit.Poll(10*time.Second, func() bool { return unsent(t, ctx) > 0 }) {
			return errors.New("the socket buffer never filled")
		}
		s.Close()
		if err := <-wrote; err == nil {
			return errors.New("a write to a client reading nothing succeeded across Close")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-ended
}

// unsent is how many bytes wait in the send queue of the bare socket
// served under ctx (SIOCOUTQ).
func unsent(t *testing.T, ctx context.Context) int {
	tr := ctx.Value(trackedKey{}).(*tracked)
	tr.srv.mu.Lock()
	defer tr.srv.mu.Unlock()
	if tr.bare == nil {
		return 0
	}
	n, err := unix.IoctlGetInt(int(tr.bare.fd), unix.SIOCOUTQ)
	if err != nil {
		t.Error(err)
	}
	return n
}

// runOutOfDescriptors runs f with the process out of descriptors: a low soft
// limit, filled with /dev/null; both undone after.
func runOutOfDescriptors(t *testing.T, f func() error) error {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(openFDs(t)) + 64
	if low.Cur >= lim.Cur {
		t.Skipf("the open-file limit (%d) is too low for this test", lim.Cur)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	var fill []int
	defer func() {
		for _, fd := range fill {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	return f()
}
