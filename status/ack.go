package status

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// Waiting for the client to take the answer.
//
// Writing the answer and closing is not enough to bound what a client
// costs: a write returns once the kernel has queued the bytes, and a socket
// closed with bytes still queued lives on as an orphan that keeps them (up
// to the send buffer, megabytes) while it probes a peer that never reads,
// for minutes. So after the last write svr waits, within the write
// timeout, until the client has acknowledged every byte and the FIN
// (tcpsock.AwaitAcked, whose rule says what a reset does), and resets the
// connection otherwise, so the kernel frees the queue at once.

// awaitTaken waits until the client has acknowledged everything sent on
// conn (the answer and the FIN), or deadline passes. Meanwhile it reads
// and drops what the client sends (at most lingerBytes), which also wakes
// the wait as soon as a client that has read the answer closes or resets.
// It reports whether the client took everything; on a connection whose
// send queue cannot be seen (not TCP, or not Linux) it reports true at
// once.
func awaitTaken(conn net.Conn, deadline time.Time) bool {
	// Under TLS the bytes are read from the TCP connection beneath and
	// dropped unread, records or not, as they were before the answer.
	tc, ok := tcpsock.TCPConn(conn)
	if !ok {
		return true
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	wake := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(wake)
		tc.SetReadDeadline(deadline)
		buf := make([]byte, 512)
		for read := 0; read <= lingerBytes; {
			n, err := tc.Read(buf)
			read += n
			if err != nil {
				return // end of file, a reset, or the wait is over
			}
		}
		// A client that floods after its request: stop reading.
	})
	err := tcpsock.AwaitAcked(ctx, tc, 0, wake)
	tc.SetReadDeadline(time.Unix(1, 0)) // end the reading, if it goes on
	wg.Wait()
	tc.SetReadDeadline(time.Time{})
	return err == nil
}
