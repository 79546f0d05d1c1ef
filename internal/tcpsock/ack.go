package tcpsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Waiting until the peer has everything.
//
// A write returns once the kernel has queued the bytes, and a close
// returns at once too: the kernel goes on sending from an orphaned
// socket. A server that must know its answer arrived (tms logs "transfer
// done", svr bounds what a client costs) waits for the acknowledgements.
//
// The rule, the same for every caller:
//
//   - Done when the send queue is empty (SIOCOUTQ 0): the peer's kernel
//     has acknowledged every byte written and, if this side has
//     half-closed, the FIN, which the queue counts as one byte. Call
//     AwaitAcked after CloseWrite to wait for the end as well as the
//     bytes; before it, for the bytes alone.
//   - A reset, or the peer's close, after that changes nothing: what the
//     peer's kernel acknowledged it holds, and AwaitAcked reports success
//     whenever it looks, before or after the reset.
//   - A connection the kernel has ended with bytes or the FIN still
//     unacknowledged (the peer reset it, or the kernel gave up on it:
//     TCP_USER_TIMEOUT, the retransmission limit) ends the wait at once
//     with the connection's error (ECONNRESET, ETIMEDOUT; ECONNRESET if
//     a read on the connection took the error first): those bytes will
//     never be acknowledged. Only the kernel's end counts: a soft error
//     (an ICMP message) while the connection lives does not end it.
//   - Otherwise it waits, looking at the queue every millisecond at
//     first and at most every ackPollMax (the kernel gives no event for
//     an acknowledgement), until ctx ends or idle passes with no
//     acknowledgement (the queue unchanged): a slow reader still taking
//     the answer is given idle more after each.

// ackPollMax is the longest pause between two looks at the send queue.
const ackPollMax = 20 * time.Millisecond

// ErrNoProgress is returned by AwaitAcked when the peer acknowledged
// nothing for the idle time it was given.
var ErrNoProgress = errors.New("nothing acknowledged")

// queue is one look at the send queue (see sendQueue).
type queue struct {
	queued int   // SIOCOUTQ
	closed bool  // the kernel has ended the connection
	err    error // its error, read once closed with bytes queued
}

// AwaitAcked waits until the peer's kernel has acknowledged everything
// written on conn, and the FIN if this side has half-closed it, by the
// rule above. It returns nil then; context.Cause(ctx) when ctx ends
// first; an error wrapping ErrNoProgress when idle (> 0; 0 means no
// bound but ctx) passes without an acknowledgement; or the connection's
// error when the kernel ended it first. Each value or close of wake (nil
// for none) makes it look again at once: a caller reading the
// connection meanwhile passes what tells it the peer closed or reset.
//
// conn is a TCP connection or a TLS one over TCP. Where the queue cannot
// be seen (another kind of connection, a system other than Linux) it
// returns nil at once, as if the peer had everything.
func AwaitAcked(ctx context.Context, conn net.Conn, idle time.Duration, wake <-chan struct{}) error {
	tc := tcpConn(conn)
	if tc == nil {
		return nil
	}
	last := -1 // the queue at the previous look
	var stalled time.Time
	pause := time.Millisecond
	for {
		q, ok := sendQueue(tc)
		if !ok || q.queued == 0 {
			return nil
		}
		if q.closed {
			if q.err == nil {
				q.err = syscall.ECONNRESET
			}
			return q.err
		}
		now := time.Now()
		if q.queued != last {
			last, stalled = q.queued, now
		}
		if idle > 0 && now.Sub(stalled) >= idle {
			return fmt.Errorf("%w for %s: %d bytes queued", ErrNoProgress, idle, q.queued)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case _, open := <-wake:
			t.Stop()
			if !open {
				wake = nil
			}
		case <-t.C:
		}
		pause = min(2*pause, ackPollMax)
	}
}
