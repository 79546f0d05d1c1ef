package server

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// Writing to a parked connection.
//
// A connection parked with ParkSocket may be held by the server as a bare
// descriptor, with no net.Conn at all, so code other than its handler
// that writes to its client (strsvr's watchers' writer, which sends each
// change of v) cannot keep a net.Conn of it: it writes through the
// handler's context instead (Write), and ends it the same way
// (InterruptServed). That lets a watcher, which is written to but rarely
// speaks, cost what a quiet typist costs (docs/reliability.md, "Memory
// per idle connection").

// errNotServed is Write's error for a context that is not a served
// connection's.
var errNotServed = errors.New("write: not a connection served by a Server")

// Write writes p to the client of the connection served under ctx (the
// context its handler was given), wherever the connection is: with its
// handler, parked (Park), or parked as a bare socket (ParkSocket). It is
// for code other than the handler that writes to the client (a watcher's
// writer), which cannot keep a net.Conn that ParkSocket may close. The
// client has timeout to take each part of p: the write deadline moves on
// while it takes bytes, and the write fails with os.ErrDeadlineExceeded
// when it takes none for that long. Write sets the write deadline of the
// connection's net.Conn, if it has one. Calls for one connection must not
// overlap, nor overlap the handler's own writes: the caller serializes
// them, as it must for its frames to stay whole anyway.
//
// A bare socket is written with one non-blocking send(2) under the
// server's lock, which is what keeps its descriptor from being closed
// (woken, made a net.Conn again: attach) and its number reused meanwhile.
// What the socket buffer cannot take at once (a slow reader) is written
// through a net.Conn made of a copy of the descriptor, with the server's
// keep-alive, for as long as the rest takes: the socket stays bare, and
// Close closes that net.Conn as it closes every connection's, so a write
// under Close fails at once. Out of descriptors for that copy (silent
// connections fill the table), the rest goes by non-blocking send(2) as
// the socket takes it, Write waiting for it with poll(2), on the same
// terms. A connection that has its net.Conn is
// written through it, and is not made a bare socket until the write
// ends.
func Write(ctx context.Context, p []byte, timeout time.Duration) (int, error) {
	t, _ := ctx.Value(trackedKey{}).(*tracked)
	if t == nil {
		return 0, errNotServed
	}
	if len(p) == 0 {
		return 0, nil
	}
	s := t.srv
	n, took := 0, time.Now() // bytes written, and when the client last took some
	for {
		s.mu.Lock()
		conn, lent := t.conn, false
		if conn == nil {
			if t.bare == nil || (n > 0 && s.connsClosed) {
				s.mu.Unlock()
				return n, net.ErrClosed
			}
			fd := int(t.bare.fd)
			m, err := sendNow(fd, p[n:])
			if n += m; m > 0 {
				took = time.Now()
			}
			if err != nil || n == len(p) {
				s.mu.Unlock()
				return n, err
			}
			if conn, err = s.lend(t); err != nil {
				s.mu.Unlock()
				if !outOfDescriptors(err) {
					return n, err
				}
				// No descriptor for a copy (silent connections fill the
				// table): the rest goes by send(2) as the socket takes
				// it, on the same terms, without one.
				wait := timeout - time.Since(took)
				if wait <= 0 {
					return n, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
				}
				waitWritable(fd, min(wait, maxWritableWait))
				continue
			}
			lent = true
		}
		t.writing = true
		s.mu.Unlock()
		m, err := writeAll(conn, p[n:], timeout)
		s.mu.Lock()
		t.writing = false
		if lent {
			delete(s.lent, t)
		}
		s.mu.Unlock()
		if lent {
			conn.Close() // a copy: the socket stays open, bare
		}
		return n + m, err
	}
}

// maxWritableWait bounds each wait of Write for a bare socket to take
// more without a copy of it (out of descriptors), so that it sees the
// socket made a net.Conn again, or the server closing, soon.
const maxWritableWait = 100 * time.Millisecond

// outOfDescriptors reports whether err is the process's or the system's
// descriptor table being full.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// writeAll writes p to conn, giving the client timeout to take each part.
func writeAll(conn net.Conn, p []byte, timeout time.Duration) (int, error) {
	n := 0
	for {
		conn.SetWriteDeadline(time.Now().Add(timeout))
		m, err := conn.Write(p[n:])
		n += m
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || m == 0 {
			return n, err
		}
		// Slow, not stopped: the deadline moves on.
	}
}

// InterruptServed is Interrupt for the connection served under ctx (the
// context its handler was given), wherever it is, a bare socket
// (ParkSocket) included: shutdown(SHUT_RD) through its descriptor, under
// the server's lock, as Close reaches it. With reset, SO_LINGER 0 first,
// so that the handler's close of it is a reset (a client that stopped
// reading, with a full send buffer that would otherwise linger). It is how
// code that writes with Write ends a connection whose write failed.
func InterruptServed(ctx context.Context, reset bool) {
	t, _ := ctx.Value(trackedKey{}).(*tracked)
	if t == nil {
		return
	}
	t.srv.mu.Lock()
	defer t.srv.mu.Unlock()
	t.interrupt(reset)
}
