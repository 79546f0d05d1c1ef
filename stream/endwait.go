package stream

import (
	"net"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// A message without a length or a terminator, such as the tutorial's
// tmc.py sends ("abc", then it only reads), has no end on the wire: the
// reader takes a quiet spell as its end. On loopback or a clean LAN a
// single write arrives within a millisecond, so a short quiet gap is
// enough. On a real link it is not: a lost segment is sent again only
// after the sender's retransmission timeout (200 ms at least, doubling at
// each new loss), and on a slow uplink each 1448-byte segment takes its
// own time (58 ms at 200 kbit/s). A fixed gap then cuts the message.
//
// EndWait bases the decision on what the socket knows instead.

// Minimum retransmission timeout of Linux (TCP_RTO_MIN) and of RFC 6298's
// recommendation: no sender retransmits sooner.
const minRTO = 200 * time.Millisecond

// endRetries is how many losses in a row of a segment EndWait waits out
// when it only suspects more is coming: the sender retransmits after RTO,
// 2 RTO, 4 RTO, 8 RTO, so 4 losses in a row take 15 RTO.
const endRetries = 4

// maxSettle bounds that wait on a slow link.
const maxSettle = 10 * time.Second

// stalledSenderWait is how long EndWait waits when it is all but sure more
// is coming (the bytes end on a full segment of a lossy link): long
// enough for a sender whose retransmission timeout has backed off to
// 6.4 s and more after losses in a row (measured at 20% loss each way:
// silences of over 3 s in the middle of a 100 kB message).
const stalledSenderWait = 30 * time.Second

// EndWait tells a reader that has received bytes on conn, and nothing
// more for quiet, how much longer to wait for more before it takes the
// quiet as the end of the peer's message; 0 means the message is complete
// now. Call it when a read times out, and read again with a deadline that
// much later if it is not 0 (never past the reader's own overall
// deadline).
//
// n (> 0) is the size of the last burst: the bytes read since a read last
// returned less than its buffer could take (the receive queue was empty
// then, so the burst starts at a segment boundary), or all the bytes
// received. A slow link hands over one segment per read, so that is the
// last segment; the total alone is not enough, since a message whose
// first write was short ("hello", then the rest) no longer ends at a
// multiple of the segment size after full segments.
//
// The rule, from TCP_INFO and the socket's queues (see tcpsock.Stats):
//
//   - no end before gap, as before, nor while bytes are ready to read
//     (they arrived since the read timed out);
//   - no end while data waits behind a gap, which a retransmission will
//     fill: EndWait returns gap and the reader asks again;
//   - the link has shown loss (the peer's packets arrived out of order,
//     or this side had to retransmit) and the last burst ends on a full
//     segment, so the sender was cut off in the middle of a write: no end
//     before stalledSenderWait;
//   - either one of those (loss, or a full last segment: a slow link
//     delivering one segment at a time, or a writer of several writes):
//     no end until the last segment could have been lost endRetries times
//     in a row and sent again, 15 retransmission timeouts estimated from
//     the round-trip times measured on this connection (at least 200 ms),
//     at most maxSettle;
//   - otherwise, a clean link and a last segment shorter than a full one,
//     the end of the sender's write: gap.
//
// So a short message on a clean link still ends after gap (50 ms for tms
// on loopback), while a message crossing a lossy or slow link ends only
// when TCP can no longer be delivering it. A client that neither ends its
// message nor half-closes, and whose message ends on full segments (its
// last burst a multiple of 1448 bytes on Ethernet), waits up to
// maxSettle for its answer. Where TCP_INFO is not available (not TCP, not
// Linux) the rule is gap alone.
func EndWait(conn net.Conn, n int64, quiet, gap time.Duration) time.Duration {
	return endWait(conn, n, quiet, gap, false)
}

// endWait is EndWait with one more sign of loss: paused says the message
// arrived with a pause of a retransmission timeout or more between its
// bytes (Message.LongestPause), which is what a lost segment looks like
// to a receiver when nothing arrives after it: a sender that writes a
// byte at a time with Nagle's algorithm on (Python's default) holds its
// next bytes until the lost one is acknowledged, so no data ever waits
// out of order and no counter shows the loss.
func endWait(conn net.Conn, n int64, quiet, gap time.Duration, paused bool) time.Duration {
	if quiet < gap {
		return gap - quiet
	}
	st, err := tcpsock.ReadStats(conn)
	if err != nil {
		return 0
	}
	if st.Readable > 0 {
		return time.Millisecond // bytes arrived since the read timed out: read them
	}
	if st.OutOfOrderQueued {
		return gap
	}
	lossy := st.OutOfOrderPackets > 0 || st.Retransmits > 0 || paused
	// A full segment is one of the link's largest: the peer's segments
	// are as large as this side's (1448 bytes on Ethernet, 64 kB on
	// loopback). The receiver's estimate alone is not enough: it is the
	// largest segment seen so far, so a one-segment message of 1448 bytes
	// on loopback would be "full".
	fullSegment := st.RcvMSS > 0 && st.RcvMSS == st.SndMSS && n%int64(st.RcvMSS) == 0
	var need time.Duration
	switch {
	case lossy && fullSegment:
		need = stalledSenderWait
	case lossy || fullSegment:
		need = settleTime(st)
	}
	if quiet < need {
		return need - quiet
	}
	return 0
}

// settleTime is how long after its last byte a message whose tail may be
// lost is taken as complete.
func settleTime(st tcpsock.Stats) time.Duration {
	rto := max(minRTO, st.RTO, minRTO+2*max(st.RTT, st.RcvRTT))
	return min(maxSettle, (1<<endRetries-1)*rto)
}
