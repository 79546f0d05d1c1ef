package capture

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Packet is one frame, decoded as far as the lessons need.
type Packet struct {
	// At is when the frame was captured: its kernel timestamp, made to
	// follow the order of capture by Record.Packets.
	At time.Time
	// Length is the frame's length on the wire.
	Length int
	// SrcMAC and DstMAC are the Ethernet addresses; nil when the frame is
	// not Ethernet.
	SrcMAC, DstMAC net.HardwareAddr
	// ARP is set for an ARP frame, TCP for a TCP segment over IPv4 or IPv6.
	ARP *ARP
	TCP *Segment
}

// ARP is an ARP request ("who has TargetIP? tell SenderIP") or reply
// ("SenderIP is at SenderMAC").
type ARP struct {
	Request              bool
	SenderMAC, TargetMAC net.HardwareAddr
	SenderIP, TargetIP   netip.Addr
}

func (a *ARP) String() string {
	if a.Request {
		return fmt.Sprintf("ARP who has %s? tell %s", a.TargetIP, a.SenderIP)
	}
	return fmt.Sprintf("ARP %s is at %s", a.SenderIP, a.SenderMAC)
}

// Segment is a TCP segment.
type Segment struct {
	Src, Dst netip.AddrPort
	// Seq and Ack are the raw sequence and acknowledgement numbers.
	Seq, Ack                uint32
	SYN, ACK, FIN, RST, PSH bool
	// Window is the header's window field, not yet scaled.
	Window uint16
	// WScale is the window-scale shift a SYN offers, -1 if none.
	WScale int
	// MSS is the maximum segment size a SYN offers, 0 if none.
	MSS int
	// Payload is the number of data bytes the segment carries (from the
	// IP length, so right even when the capture kept less).
	Payload int
	// SACK are the selective-acknowledgement blocks, raw numbers.
	SACK [][2]uint32
}

// Flags prints the segment's flags as tcpdump does: "S", "S.", ".", "P.",
// "F.", "R".
func (s *Segment) Flags() string {
	var b strings.Builder
	for _, f := range []struct {
		on bool
		c  byte
	}{{s.SYN, 'S'}, {s.FIN, 'F'}, {s.PSH, 'P'}, {s.RST, 'R'}, {s.ACK, '.'}} {
		if f.on {
			b.WriteByte(f.c)
		}
	}
	return b.String()
}

// Decode parses one frame with gopacket's layers. What it cannot parse is
// left nil: a frame is never an error.
func Decode(f Frame) Packet {
	p := Packet{At: f.At, Length: f.Length}
	pkt := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	eth, ok := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok {
		return p
	}
	p.SrcMAC, p.DstMAC = eth.SrcMAC, eth.DstMAC
	if a, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		sip, _ := netip.AddrFromSlice(a.SourceProtAddress)
		tip, _ := netip.AddrFromSlice(a.DstProtAddress)
		p.ARP = &ARP{
			Request:   a.Operation == layers.ARPRequest,
			SenderMAC: net.HardwareAddr(a.SourceHwAddress),
			TargetMAC: net.HardwareAddr(a.DstHwAddress),
			SenderIP:  sip, TargetIP: tip,
		}
		return p
	}
	t, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		return p
	}
	var src, dst netip.Addr
	var ipPayload int
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		ipPayload = int(ip.Length) - int(ip.IHL)*4
	case *layers.IPv6:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		ipPayload = int(ip.Length)
	default:
		return p
	}
	s := &Segment{
		Src: netip.AddrPortFrom(src, uint16(t.SrcPort)), Dst: netip.AddrPortFrom(dst, uint16(t.DstPort)),
		Seq: t.Seq, Ack: t.Ack,
		SYN: t.SYN, ACK: t.ACK, FIN: t.FIN, RST: t.RST, PSH: t.PSH,
		Window: t.Window, WScale: -1,
		Payload: max(0, ipPayload-int(t.DataOffset)*4),
	}
	for _, o := range t.Options {
		switch o.OptionType {
		case layers.TCPOptionKindWindowScale:
			if len(o.OptionData) == 1 {
				s.WScale = int(o.OptionData[0])
			}
		case layers.TCPOptionKindMSS:
			if len(o.OptionData) == 2 {
				s.MSS = int(o.OptionData[0])<<8 | int(o.OptionData[1])
			}
		case layers.TCPOptionKindSACK:
			for d := o.OptionData; len(d) >= 8; d = d[8:] {
				s.SACK = append(s.SACK, [2]uint32{be32(d), be32(d[4:])})
			}
		}
	}
	p.TCP = s
	return p
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Packets decodes every frame of the record, and puts their times in the
// order of capture: a packet stamped no later than the one before it is
// taken to come 1 ns after it.
//
// The kernel hands a packet socket the frames of one interface in the
// order of cause and effect (a frame sent is queued to the capture before
// it leaves, a frame received before the stack reads it), but its
// timestamps do not always agree: on a loaded machine a frame is
// sometimes stamped a little before the one captured ahead of it (seen: a
// FIN stamped 1.6 ms before the data segment it followed). Left as they
// are, such stamps draw a FIN before the data and a byte sent before the
// ACK that let it go. The pcap file keeps the kernel's stamps.
func (r *Record) Packets() []Packet {
	ps := make([]Packet, len(r.Frames))
	for i, f := range r.Frames {
		ps[i] = Decode(f)
		if i > 0 && !ps[i].At.After(ps[i-1].At) {
			ps[i].At = ps[i-1].At.Add(time.Nanosecond)
		}
	}
	return ps
}
