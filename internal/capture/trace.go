package capture

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// Trace is one direction of one TCP connection as a capture saw it: what a
// time-sequence graph (Stevens's, tcptrace's, Wireshark's "Stevens" and
// "tcptrace" graphs) draws. Sequence numbers are relative: byte 0 is the
// first data byte the sender sent (the one after its SYN), as Wireshark
// shows them.
type Trace struct {
	// From sends the data; To receives it and sends the ACKs.
	From, To netip.AddrPort
	// Start is the time of the connection's first segment (the SYN, when
	// the capture has it); every At is measured from it.
	Start time.Time
	// HaveSYN says the capture holds From's SYN, so sequence numbers are
	// relative to it (otherwise to the first segment From sent).
	HaveSYN bool
	// Data are From's segments that carry data, in capture order.
	Data []DataSegment
	// Acks are To's segments with the ACK flag, in capture order, with
	// the window they offered.
	Acks []AckPoint
	// Marks are the segments with SYN, FIN or RST, both directions.
	Marks []Mark
	// MSS is the segment size To offered in its SYN (0 if not seen).
	MSS int
	// Handshake is the time from the SYN to the ACK that completes the
	// three-way handshake, the connection's first round trip as the
	// capture saw it; 0 if the capture lacks one of the three.
	Handshake time.Duration
}

// DataSegment is one segment of data.
type DataSegment struct {
	At time.Duration
	// Seq is the relative number of the segment's first byte; it carries
	// Bytes bytes.
	Seq   int64
	Bytes int
	// Retransmitted: some of the segment's bytes were seen before: it was
	// sent again.
	Retransmitted bool
	// OutOfOrder: the segment is new but came after a later one (a
	// capture on the receiver's side can see that: a veth on two CPUs
	// may reorder).
	OutOfOrder bool
}

// End is the relative number of the byte after the segment.
func (d DataSegment) End() int64 { return d.Seq + int64(d.Bytes) }

// AckPoint is one acknowledgement from the receiver.
type AckPoint struct {
	At time.Duration
	// Ack is the relative number of the next byte the receiver expects:
	// it has every byte below.
	Ack int64
	// Window is the receive window, scaled, in bytes: the sender may send
	// up to Ack+Window.
	Window int64
	// SACK are the blocks received beyond Ack, relative [start, end).
	SACK [][2]int64
}

// Mark is a segment with SYN, FIN or RST.
type Mark struct {
	At time.Duration
	// FromSender: the segment went From -> To.
	FromSender bool
	// Flags as tcpdump prints them ("S", "S.", "F.", "R.").
	Flags string
	// Seq is the mark's relative sequence number in the data direction
	// (From's Seq, or To's Ack).
	Seq int64
}

// Conn names a TCP connection by its two ends, Client the one that sent
// the SYN (or, without a SYN, the first segment).
type Conn struct{ Client, Server netip.AddrPort }

// Conns lists the TCP connections of packets in the order they began.
func Conns(packets []Packet) []Conn {
	var conns []Conn
	for _, p := range packets {
		s := p.TCP
		if s == nil {
			continue
		}
		c := Conn{s.Src, s.Dst}
		if s.SYN && s.ACK {
			c = Conn{s.Dst, s.Src}
		}
		if slices.ContainsFunc(conns, func(o Conn) bool { return o == c || o == (Conn{c.Server, c.Client}) }) {
			continue
		}
		conns = append(conns, c)
	}
	return conns
}

// TraceOf follows the data from -> to among packets.
func TraceOf(packets []Packet, from, to netip.AddrPort) *Trace {
	t := &Trace{From: from, To: to}
	var (
		started         bool
		isn             uint32 // From's raw number for relative -1 (its SYN)
		haveISN         bool
		synBy           netip.AddrPort // who sent the SYN
		synAt, synAckAt time.Duration  = -1, -1
		fromScale                      = -1 // window scale From offered: applies to To's windows only if both offered
		toScale                        = -1
		sndMax          int64
		seen            ranges // the bytes seen so far
	)
	rel := func(seq uint32) int64 { return int64(int32(seq - isn - 1)) }
	for _, p := range packets {
		s := p.TCP
		if s == nil {
			continue
		}
		forward := s.Src == from && s.Dst == to
		backward := s.Src == to && s.Dst == from
		if !forward && !backward {
			continue
		}
		if !started {
			started, t.Start = true, p.At
		}
		at := p.At.Sub(t.Start)
		if forward {
			if s.SYN {
				isn, haveISN, t.HaveSYN = s.Seq, true, true
				fromScale = s.WScale
			} else if !haveISN {
				isn, haveISN = s.Seq-1, true
			}
		} else if s.SYN {
			toScale = s.WScale
			t.MSS = s.MSS
		}
		switch {
		case s.SYN && !s.ACK && synAt < 0:
			synAt, synBy = at, s.Src
		case s.SYN && s.ACK && synAt >= 0 && synAckAt < 0:
			synAckAt = at
		case !s.SYN && s.ACK && s.Src == synBy && synAckAt >= 0 && t.Handshake == 0:
			t.Handshake = at - synAt
		}
		if !haveISN {
			// To spoke first and we have no SYN of From's: take its ACK
			// as the start of From's numbers.
			if backward && s.ACK {
				isn, haveISN = s.Ack-1, true
			} else {
				continue
			}
		}
		if s.SYN || s.FIN || s.RST {
			m := Mark{At: at, FromSender: forward, Flags: s.Flags()}
			if forward {
				m.Seq = rel(s.Seq)
				if s.FIN {
					m.Seq += int64(s.Payload)
				}
			} else if s.ACK {
				m.Seq = rel(s.Ack)
			} else {
				m.Seq = -1 // To's SYN: where From's numbers start
			}
			t.Marks = append(t.Marks, m)
		}
		if forward && s.Payload > 0 {
			d := DataSegment{At: at, Seq: rel(s.Seq), Bytes: s.Payload}
			if d.Seq < sndMax {
				d.Retransmitted = seen.overlaps(d.Seq, d.End())
				d.OutOfOrder = !d.Retransmitted
			}
			seen.add(d.Seq, d.End())
			sndMax = max(sndMax, d.End())
			t.Data = append(t.Data, d)
		}
		if backward && s.ACK && !s.RST {
			win := int64(s.Window)
			if !s.SYN && fromScale >= 0 && toScale >= 0 {
				win <<= toScale
			}
			a := AckPoint{At: at, Ack: rel(s.Ack), Window: win}
			for _, b := range s.SACK {
				a.SACK = append(a.SACK, [2]int64{rel(b[0]), rel(b[1])})
			}
			t.Acks = append(t.Acks, a)
		}
	}
	return t
}

// Bytes is the data sent, counting each byte once: the highest byte sent.
func (t *Trace) Bytes() int64 {
	var end int64
	for _, d := range t.Data {
		end = max(end, d.End())
	}
	return end
}

// Retransmissions counts the data segments sent again.
func (t *Trace) Retransmissions() int {
	n := 0
	for _, d := range t.Data {
		if d.Retransmitted {
			n++
		}
	}
	return n
}

// Duration is the time from the first segment to the last one seen.
func (t *Trace) Duration() time.Duration {
	var end time.Duration
	if len(t.Data) > 0 {
		end = t.Data[len(t.Data)-1].At
	}
	if len(t.Acks) > 0 {
		end = max(end, t.Acks[len(t.Acks)-1].At)
	}
	if len(t.Marks) > 0 {
		end = max(end, t.Marks[len(t.Marks)-1].At)
	}
	return end
}

// SegmentSizes are the sizes of the data segments sent for the first time.
func (t *Trace) SegmentSizes() []int {
	var sizes []int
	for _, d := range t.Data {
		if !d.Retransmitted {
			sizes = append(sizes, d.Bytes)
		}
	}
	return sizes
}

// RTTs are the round-trip times the capture shows: for each data segment
// never sent again (Karn's rule: an ACK after a retransmission cannot say
// which copy it answers), the time until the first ACK that covers it.
// Measured where the capture was taken: on the sender's side, the time a
// segment took to be answered; a receiver that delays its ACK adds the
// delay.
func (t *Trace) RTTs() []time.Duration {
	var resent [][2]int64
	for _, d := range t.Data {
		if d.Retransmitted {
			resent = append(resent, [2]int64{d.Seq, d.End()})
		}
	}
	var rtts []time.Duration
	j := 0
	for _, d := range t.Data {
		if d.Retransmitted || slices.ContainsFunc(resent, func(r [2]int64) bool { return r[0] < d.End() && d.Seq < r[1] }) {
			continue
		}
		for j < len(t.Acks) && (t.Acks[j].At < d.At || t.Acks[j].Ack < d.End()) {
			if t.Acks[j].At >= d.At && t.Acks[j].Ack >= d.End() {
				break
			}
			j++
		}
		if j == len(t.Acks) {
			break
		}
		rtts = append(rtts, t.Acks[j].At-d.At)
	}
	return rtts
}

// ranges is a set of byte ranges [start, end), sorted and merged.
type ranges [][2]int64

func (r ranges) overlaps(start, end int64) bool {
	i, _ := slices.BinarySearchFunc(r, start, func(x [2]int64, v int64) int { return cmp.Compare(x[1], v+1) })
	return i < len(r) && r[i][0] < end && start < r[i][1]
}

func (r *ranges) add(start, end int64) {
	out := (*r)[:0:0]
	for _, x := range *r {
		switch {
		case x[1] < start || end < x[0]:
			out = append(out, x)
		default:
			start, end = min(start, x[0]), max(end, x[1])
		}
	}
	out = append(out, [2]int64{start, end})
	slices.SortFunc(out, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	*r = out
}
