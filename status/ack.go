package status

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// Waiting for the client to take the answer.
//
// Writing the answer and closing is not enough to bound what a client
// costs: a write returns once the kernel has queued the bytes, and a socket
// closed with bytes still queued lives on as an orphan that keeps them (up
// to the send buffer, megabytes) while it probes a peer that never reads,
// for minutes. So after the last write svr waits, within the write
// timeout, until the client has acknowledged every byte and the FIN (the
// kernel's send queue is empty: SIOCOUTQ on Linux), and resets the
// connection otherwise, so the kernel frees the queue at once.

// ackPollMax is the longest pause between two looks at the send queue
// while the client is still reading; the looks start at ackPollMin apart
// and double.
const (
	ackPollMin = time.Millisecond
	ackPollMax = 50 * time.Millisecond
)

// awaitTaken waits until the client has acknowledged everything sent on
// conn (the answer and the FIN), or deadline passes. It reads and drops
// what the client sends meanwhile (at most lingerBytes), which also wakes
// it as soon as a client that has read the answer closes. It reports
// whether the client took everything; on a connection whose send queue
// cannot be seen (not TCP, or not Linux) it reports true at once.
func awaitTaken(conn net.Conn, deadline time.Time) bool {
	tc := tcpConn(conn)
	if tc == nil {
		return true
	}
	buf := make([]byte, 512)
	read, eof := 0, false
	pause := ackPollMin
	for {
		n, ok := unsentBytes(tc)
		if !ok || n == 0 {
			return true
		}
		now := time.Now()
		if !now.Before(deadline) {
			return false
		}
		wait := min(pause, deadline.Sub(now))
		pause = min(2*pause, ackPollMax)
		if eof {
			time.Sleep(wait) // nothing left to read: only the queue to watch
			continue
		}
		tc.SetReadDeadline(now.Add(wait))
		m, err := tc.Read(buf)
		read += m
		switch {
		case err == nil:
			if read > lingerBytes {
				eof = true // a client that floods after its request: stop reading
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, io.EOF):
			eof = true // the client closed its side; it may still be reading
		default:
			return false // reset by the client: the kernel dropped the queue
		}
	}
}

// tcpConn is the TCP connection under conn (under a TLS connection too),
// or nil.
func tcpConn(conn net.Conn) *net.TCPConn {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil
		}
	}
}
