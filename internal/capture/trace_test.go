package capture

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// frameOf builds the Ethernet frame of one TCP segment with gopacket.
func frameOf(t testing.TB, at time.Time, src, dst netip.AddrPort, tcp *layers.TCP, payload int) Frame {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp.SrcPort, tcp.DstPort = layers.TCPPort(src.Port()), layers.TCPPort(dst.Port())
	tcp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(make([]byte, payload))); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	return Frame{At: at, Data: data, Length: len(data)}
}

// conversation is a generated connection: a sender that sends size bytes
// in segments of random sizes, sometimes sends an earlier segment again,
// and a receiver that acknowledges with a scaled window.
type conversation struct {
	frames          []Frame
	size            int64
	segments        int
	retransmissions int
	outOfOrder      int
	scale           int
	lastAck         int64
	lastWindow      int64
}

func generate(t *testing.T, seed uint64) conversation {
	r := rand.New(rand.NewPCG(seed, 0))
	from := netip.MustParseAddrPort("10.200.0.2:2000")
	to := netip.MustParseAddrPort("10.200.0.1:40000")
	isn := r.Uint32() // often near the wrap
	if r.IntN(2) == 0 {
		isn = ^uint32(0) - uint32(r.IntN(5000))
	}
	peerISN := r.Uint32()
	c := conversation{scale: r.IntN(10)}
	at := time.Unix(1_700_000_000, 0)
	tick := func() time.Time { at = at.Add(time.Duration(1+r.IntN(1000)) * time.Microsecond); return at }
	opts := func(scale int) []layers.TCPOption {
		return []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xa8}},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(scale)}},
		}
	}
	// The receiver connects, as tmc does to tms.
	c.frames = append(c.frames,
		frameOf(t, tick(), to, from, &layers.TCP{SYN: true, Seq: peerISN, Window: 64240, Options: opts(c.scale)}, 0),
		frameOf(t, tick(), from, to, &layers.TCP{SYN: true, ACK: true, Seq: isn, Ack: peerISN + 1, Window: 65160, Options: opts(7)}, 0),
		frameOf(t, tick(), to, from, &layers.TCP{ACK: true, Seq: peerISN + 1, Ack: isn + 1, Window: 502}, 0))
	var sent []int64 // segment starts
	var sizes []int
	var next int64
	for n := 2 + r.IntN(60); len(sent) < n; {
		if len(sent) > 0 && r.IntN(6) == 0 {
			i := r.IntN(len(sent))
			c.frames = append(c.frames, frameOf(t, tick(), from, to, &layers.TCP{ACK: true, Seq: isn + 1 + uint32(sent[i]), Ack: peerISN + 1, Window: 509}, sizes[i]))
			c.retransmissions++
			c.segments++
			continue
		}
		if r.IntN(8) == 0 {
			// Two new segments, the second seen first (reordered).
			s1, s2 := 1+r.IntN(1448), 1+r.IntN(1448)
			c.frames = append(c.frames,
				frameOf(t, tick(), from, to, &layers.TCP{ACK: true, Seq: isn + 1 + uint32(next) + uint32(s1), Ack: peerISN + 1, Window: 509}, s2),
				frameOf(t, tick(), from, to, &layers.TCP{ACK: true, Seq: isn + 1 + uint32(next), Ack: peerISN + 1, Window: 509}, s1))
			sent, sizes = append(sent, next, next+int64(s1)), append(sizes, s1, s2)
			next += int64(s1 + s2)
			c.segments += 2
			c.outOfOrder++
			continue
		}
		size := 1 + r.IntN(1448)
		c.frames = append(c.frames, frameOf(t, tick(), from, to, &layers.TCP{ACK: true, PSH: true, Seq: isn + 1 + uint32(next), Ack: peerISN + 1, Window: 509}, size))
		sent, sizes = append(sent, next), append(sizes, size)
		next += int64(size)
		c.segments++
		if r.IntN(2) == 0 {
			win := uint16(100 + r.IntN(60000))
			c.frames = append(c.frames, frameOf(t, tick(), to, from, &layers.TCP{ACK: true, Seq: peerISN + 1, Ack: isn + 1 + uint32(next), Window: win}, 0))
			c.lastAck, c.lastWindow = next, int64(win)<<c.scale
		}
	}
	c.size = next
	return c
}

// For any generated connection, the trace counts every byte once, every
// segment, exactly the segments sent again, and reads the receiver's
// window with its scale, across the wrap of the sequence numbers.
func TestTraceOfGeneratedConnections(t *testing.T) {
	for seed := range uint64(300) {
		c := generate(t, seed)
		rec := &Record{Frames: c.frames}
		pkts := rec.Packets()
		conns := Conns(pkts)
		from := netip.MustParseAddrPort("10.200.0.2:2000")
		to := netip.MustParseAddrPort("10.200.0.1:40000")
		if len(conns) != 1 || conns[0] != (Conn{to, from}) {
			t.Fatalf("seed %d: connections %v", seed, conns)
		}
		tr := TraceOf(pkts, from, to)
		if tr.Bytes() != c.size || len(tr.Data) != c.segments || tr.Retransmissions() != c.retransmissions {
			t.Fatalf("seed %d: trace has %d bytes in %d segments, %d sent again; want %d, %d, %d",
				seed, tr.Bytes(), len(tr.Data), tr.Retransmissions(), c.size, c.segments, c.retransmissions)
		}
		ooo := 0
		for _, d := range tr.Data {
			if d.OutOfOrder {
				ooo++
			}
		}
		if ooo != c.outOfOrder {
			t.Fatalf("seed %d: %d segments out of order, want %d", seed, ooo, c.outOfOrder)
		}
		if !tr.HaveSYN || tr.MSS != 1448 || tr.Handshake <= 0 {
			t.Fatalf("seed %d: SYN %v, MSS %d, handshake %v", seed, tr.HaveSYN, tr.MSS, tr.Handshake)
		}
		if c.lastWindow > 0 {
			last := tr.Acks[len(tr.Acks)-1]
			if last.Ack != c.lastAck || last.Window != c.lastWindow {
				t.Fatalf("seed %d: last ACK %d window %d, want %d window %d", seed, last.Ack, last.Window, c.lastAck, c.lastWindow)
			}
		}
		for _, rtt := range tr.RTTs() {
			if rtt <= 0 {
				t.Fatalf("seed %d: RTT %v", seed, rtt)
			}
		}
	}
}

// Decode never fails on any frame: what it cannot read it leaves nil, and
// a payload is never negative.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(frameOf(f, time.Unix(0, 0), netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), &layers.TCP{SYN: true, Window: 1}, 3).Data)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := Decode(Frame{Data: data, Length: len(data)})
		if p.TCP != nil && p.TCP.Payload < 0 {
			t.Fatalf("payload %d", p.TCP.Payload)
		}
	})
}

// The kernel's timestamps do not always follow the order it hands the
// frames over: on a loaded machine a frame is sometimes stamped up to a
// few milliseconds before the one captured ahead of it (seen: a FIN
// stamped 1.6 ms before the last data segment it followed, a held byte
// stamped before the ACK that released it). The order of capture is the
// order of cause and effect on one interface, so a packet's time never
// goes back from the one before it; everything else the trace says is
// the same. Failed before Packets kept its times in capture order.
func TestPacketTimesFollowTheCaptureOrder(t *testing.T) {
	from := netip.MustParseAddrPort("10.200.0.2:2000")
	to := netip.MustParseAddrPort("10.200.0.1:40000")
	for seed := range uint64(300) {
		c := generate(t, seed)
		straight := TraceOf((&Record{Frames: c.frames}).Packets(), from, to)
		r := rand.New(rand.NewPCG(seed, 2))
		skewed := make([]Frame, len(c.frames))
		copy(skewed, c.frames)
		for i := 1; i < len(skewed); i++ {
			if r.IntN(4) == 0 {
				skewed[i].At = skewed[i-1].At.Add(-time.Duration(r.IntN(2000)) * time.Microsecond)
			}
		}
		pkts := (&Record{Frames: skewed}).Packets()
		for i := 1; i < len(pkts); i++ {
			if !pkts[i].At.After(pkts[i-1].At) {
				t.Fatalf("seed %d: packet %d at %v, not after packet %d at %v", seed, i, pkts[i].At, i-1, pkts[i-1].At)
			}
		}
		tr := TraceOf(pkts, from, to)
		if tr.Bytes() != straight.Bytes() || len(tr.Data) != len(straight.Data) || tr.Retransmissions() != straight.Retransmissions() || len(tr.Acks) != len(straight.Acks) {
			t.Fatalf("seed %d: skewed stamps changed the trace", seed)
		}
		for _, rtt := range tr.RTTs() {
			if rtt <= 0 {
				t.Fatalf("seed %d: RTT %v", seed, rtt)
			}
		}
	}
}
