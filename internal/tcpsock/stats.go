package tcpsock

import (
	"errors"
	"net"
	"time"
)

// Stats is the part of what the kernel knows about one TCP connection
// (Linux's TCP_INFO, SO_MEMINFO and the queue sizes) that tcplab uses:
// what a reader or a writer can learn about the network beneath the byte
// stream.
type Stats struct {
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
	// has not yet acknowledged, sent or not (SIOCOUTQ), counting a FIN
	// sent and not yet acknowledged as one (Linux gives the FIN a
	// sequence number of its own, and SIOCOUTQ is write_seq - snd_una):
	// 0 when the peer's kernel holds everything written, and the end if
	// this side has half-closed. A reset leaves it as it was: what was
	// not acknowledged then never will be.
	SendQueued int
	// LastAckRecv is the time since the last acknowledgement arrived
	// from the peer: how long ago the peer was last heard.
	LastAckRecv time.Duration
	// Open says the connection still joins two kernels: it is
	// established, or only the peer has closed its side (CLOSE_WAIT), so
	// a reset sent now has someone to tell. After a reset from the peer,
	// or the kernel giving up on it (TCP_USER_TIMEOUT, the retransmission
	// limit), it is false.
	Open bool
	// Closed says the kernel has ended the connection (TCP_CLOSE): a
	// reset, a timeout, or both FINs acknowledged.
	Closed bool
}

// ErrNoStats is returned by ReadStats for a connection that is not a
// *net.TCPConn, or on a system without TCP_INFO; a caller tells it with
// errors.Is.
var ErrNoStats = errors.New("tcpsock: no TCP statistics for this connection")

// ReadStats returns the kernel's view of conn, which must be a
// *net.TCPConn itself: under TLS, the queues would count records, not the
// bytes the caller reads and writes.
func ReadStats(conn net.Conn) (Stats, error) { return readStats(conn) }
