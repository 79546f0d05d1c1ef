package stream

import (
	"errors"
	"net"
	"time"
)

// TCPStats is the part of what the kernel knows about one TCP connection
// (Linux's TCP_INFO and SO_MEMINFO) that tcplab uses: what a reader can
// learn about the network beneath the byte stream.
type TCPStats struct {
	// RTT is the smoothed round-trip time of this side's own sends (the
	// handshake at least); RcvRTT is the receiver's estimate from the
	// data it receives, which includes queueing on a slow link (0 until
	// measured). RTO is this side's retransmission timeout.
	RTT, RcvRTT, RTO time.Duration
	// RTTVar is the variation of RTT (the kernel's mean deviation); with
	// RTT it makes the peer's retransmission timeout: RTT + max(4 RTTVar,
	// 200 ms) on Linux.
	RTTVar time.Duration
	// Backoff is how many times in a row this side's retransmission
	// timer has fired without an acknowledgement since (the RTO doubles
	// each time): more than 0 while what it sent goes unanswered.
	Backoff int
	// SndMSS and RcvMSS are the segment sizes this side sends and the
	// largest it has received: 1448 on an Ethernet link with TCP
	// timestamps, about 64 kB on loopback.
	SndMSS, RcvMSS int
	// Retransmits is how many segments this side has sent again
	// (tcpi_total_retrans).
	Retransmits int64
	// OutOfOrderPackets counts packets that arrived ahead of a gap
	// (tcpi_rcv_ooopack): the peer's packets were lost or reordered.
	OutOfOrderPackets int64
	// Readable is how many bytes can be read now (SIOCINQ).
	Readable int
	// OutOfOrderQueued says data is waiting behind a gap right now: the
	// peer has sent more than the reader can read yet, and a
	// retransmission will fill the gap. It is only known when nothing is
	// readable (false otherwise): the kernel counts the memory of both
	// queues together, and a FIN not yet read counts too (a reader then
	// gets end of file at once, not a timeout).
	OutOfOrderQueued bool
	// SendQueued is how many bytes this side has written that the peer
	// has not yet acknowledged, sent or not (SIOCOUTQ; a FIN counts as
	// nothing): 0 when the peer's kernel holds everything written.
	SendQueued int
	// LastAckRecv is the time since the last acknowledgement arrived
	// from the peer: how long ago the peer was last heard.
	LastAckRecv time.Duration
}

// ErrNoTCPStats is returned by ReadTCPStats for a connection that is not
// TCP, or on a system without TCP_INFO; a caller tells it with errors.Is.
var ErrNoTCPStats = errors.New("stream: no TCP statistics for this connection")

// ReadTCPStats returns the kernel's view of conn, a *net.TCPConn.
func ReadTCPStats(conn net.Conn) (TCPStats, error) { return readTCPStats(conn) }
