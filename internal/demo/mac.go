package demo

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/tcplab/tcplab/internal/capture"
	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/seqplot"
)

// lessonMAC is section 1.1 on the lab link: each end's MAC address, the
// ARP exchange that finds the peer's before the first TCP segment, seen
// in a capture, and the neighbour table it leaves behind.
var lessonMAC = Lesson{
	Name:        "mac",
	Title:       "MAC addresses: ARP finds the peer's before the first segment",
	Section:     "1.1",
	WritesFiles: true,
	Run:         runMAC,
}

// macObservations is what the mac lesson saw.
type macObservations struct {
	Skipped string
	// MAC is each side's address, read from its interface.
	MACA, MACB net.HardwareAddr
	// Before and After are A's neighbour table (/proc/net/arp, as ip neigh
	// shows it) before and after the connection.
	Before, After []neighbour
	// Request and Reply are the ARP frames captured; RequestAt and
	// ReplyAt their times from the SYN (negative: before it).
	Request, Reply *capture.Packet
	// FirstSYN is the connection's first segment, as captured.
	FirstSYN *capture.Packet
	// Framed counts the TCP frames between A and B, and Misframed those
	// whose Ethernet addresses were not the two ends' MACs.
	Framed, Misframed int
	wire              *wireSeen
}

// Summary implements Observations.
func (o *macObservations) Summary() string {
	if o.Skipped != "" {
		return "skipped: " + o.Skipped
	}
	return fmt.Sprintf("A %s, B %s; ARP: who has %s? %s is at %s, %s before the SYN; %d TCP frames addressed MAC to MAC",
		o.MACA, o.MACB, o.Request.ARP.TargetIP, o.Reply.ARP.SenderIP, o.Reply.ARP.SenderMAC,
		ms(o.FirstSYN.At.Sub(o.Request.At)), o.Framed)
}

// neighbour is one line of the kernel's ARP table.
type neighbour struct {
	IP       netip.Addr
	MAC      net.HardwareAddr
	Complete bool // flags 0x2: the reply came
}

func runMAC(ctx context.Context, w io.Writer, opts Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &macObservations{}
	p.tutorial("machines on one network talk by MAC address, 48 bits burned into each card; A puts")
	p.tutorial("B's MAC address in the packet, and B takes the packets with its own (section 1.1).")
	if obs.Skipped = skipLab(p); obs.Skipped != "" {
		return obs, p.err()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := netlab.New()
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if obs.MACA, err = macOf(l.A); err != nil {
		return nil, err
	}
	if obs.MACB, err = macOf(l.B); err != nil {
		return nil, err
	}
	p.do("make a link of two network namespaces, A (%s) and B (%s), and read each card's address.", l.A.Addr, l.B.Addr)
	p.saw("A's %s is %s, B's %s is %s: 48 bits each, written as six bytes.", l.A.Dev, obs.MACA, l.B.Dev, obs.MACB)
	for _, line := range macKind(obs.MACA) {
		p.saw("  %s", line)
	}
	if obs.Before, err = neighbours(l.A); err != nil {
		return nil, err
	}
	p.saw("A's neighbour table (/proc/net/arp, ip neigh) before: %s.", neighbourText(obs.Before))

	c, err := startCapture(l.A)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	p.do("tmc on A sends \"abc\" to tms at %s; tms sends it back %d times. We capture on A's card.", l.B.Addr, linkCopies)
	res, _, _, err := fetchOverLink(ctx, l, linkMessage, linkCopies)
	if err != nil {
		return nil, err
	}
	if obs.wire, err = finishCapture(ctx, c, l.A, res.conn); err != nil {
		return nil, err
	}
	if obs.After, err = neighbours(l.A); err != nil {
		return nil, err
	}
	if err := obs.read(l, res.conn); err != nil {
		return nil, err
	}
	req, rep, syn := obs.Request, obs.Reply, obs.FirstSYN
	p.saw("captured on A's card: %s. Before the first TCP segment:", count(len(obs.wire.Record.Frames), "frame"))
	p.saw("  %s before it, from %s to %s (broadcast: every card): %s", ms(syn.At.Sub(req.At)), req.SrcMAC, req.DstMAC, req.ARP)
	p.saw("  %s before it, from %s to %s: %s", ms(syn.At.Sub(rep.At)), rep.SrcMAC, rep.DstMAC, rep.ARP)
	p.saw("  then the SYN, from %s to %s, for %s.", syn.SrcMAC, syn.DstMAC, syn.TCP.Dst)
	p.saw("A could not send the SYN until it knew B's MAC: the IP address is not enough on a network.")
	p.saw("all %s between A and B carried the two ends' MACs (%d did not).", count(obs.Framed, "TCP frame"), obs.Misframed)
	p.saw("A's neighbour table after: %s.", neighbourText(obs.After))
	tr := capture.TraceOf(obs.wire.Packets, res.conn.Server, res.conn.Client)
	obs.wire.Trace = tr
	start := tr.Start
	if err := writeWire(p, obs.wire, opts, "mac", seqplot.Panel{
		Title: fmt.Sprintf("mac: ARP, then tms sends %s to tmc (%s)", byteCount(tr.Bytes()), count(len(tr.Data), "segment")),
		Trace: tr,
		From:  req.At.Sub(start) - tr.Duration()/20,
		Events: []seqplot.Event{
			{At: req.At.Sub(start), Label: "ARP: who has " + req.ARP.TargetIP.String() + "?"},
			{At: rep.At.Sub(start), Label: "ARP: " + rep.ARP.SenderIP.String() + " is at " + rep.ARP.SenderMAC.String()},
		},
	}); err != nil {
		return nil, err
	}
	p.note("Go never shows a MAC address on a connection: the kernel fills in the Ethernet header.")
	p.note("net.Interfaces lists the cards and their HardwareAddr; the capture (tcpdump -e) shows the rest.")
	return obs, p.err()
}

// read finds the lesson's facts in the capture.
func (o *macObservations) read(l *netlab.Link, conn capture.Conn) error {
	for i := range o.wire.Packets {
		pk := &o.wire.Packets[i]
		switch {
		case pk.ARP != nil && pk.ARP.Request && pk.ARP.TargetIP == l.B.Addr && o.Request == nil:
			o.Request = pk
		case pk.ARP != nil && !pk.ARP.Request && pk.ARP.SenderIP == l.B.Addr && o.Reply == nil:
			o.Reply = pk
		case pk.TCP != nil && (pk.TCP.Src == conn.Client || pk.TCP.Dst == conn.Client):
			if o.FirstSYN == nil && pk.TCP.SYN {
				o.FirstSYN = pk
			}
			o.Framed++
			fromA := pk.TCP.Src == conn.Client
			if (fromA && (!bytes.Equal(pk.SrcMAC, o.MACA) || !bytes.Equal(pk.DstMAC, o.MACB))) ||
				(!fromA && (!bytes.Equal(pk.SrcMAC, o.MACB) || !bytes.Equal(pk.DstMAC, o.MACA))) {
				o.Misframed++
			}
		}
	}
	if o.Request == nil || o.Reply == nil || o.FirstSYN == nil {
		return fmt.Errorf("the capture lacks the ARP request (%v), its reply (%v) or the SYN (%v)", o.Request != nil, o.Reply != nil, o.FirstSYN != nil)
	}
	return nil
}

// macOf reads the MAC address of h's card, inside its namespace.
func macOf(h *netlab.Host) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Dev)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac, err
}

// macKind explains the bits of a MAC address that say what kind it is.
func macKind(mac net.HardwareAddr) []string {
	if len(mac) == 0 {
		return nil
	}
	if mac[0]&2 != 0 {
		return []string{
			fmt.Sprintf("bit 1 of the first byte (%#02x) is set: a locally administered address, made up", mac[0]),
			"by the kernel for this virtual card; a real card's first three bytes name its maker.",
		}
	}
	return []string{fmt.Sprintf("the first three bytes (%s) name the card's maker (its OUI).", mac[:3])}
}

// neighbours reads h's ARP table from /proc, inside its namespace (the
// thread's view of /proc/net is its namespace's).
func neighbours(h *netlab.Host) ([]neighbour, error) {
	var ns []neighbour
	err := h.Do(func() error {
		f, err := os.Open("/proc/thread-self/net/arp")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // the heading
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 6 {
				continue
			}
			ip, err1 := netip.ParseAddr(fs[0])
			mac, err2 := net.ParseMAC(fs[3])
			if err1 != nil || err2 != nil {
				continue
			}
			ns = append(ns, neighbour{IP: ip, MAC: mac, Complete: fs[2] == "0x2"})
		}
		return sc.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("neighbour table of %s: %w", h.Name, err)
	}
	return ns, nil
}

func neighbourText(ns []neighbour) string {
	if len(ns) == 0 {
		return "empty"
	}
	parts := make([]string, 0, len(ns))
	for _, n := range ns {
		state := "incomplete"
		if n.Complete {
			state = "complete"
		}
		parts = append(parts, fmt.Sprintf("%s at %s (%s)", n.IP, n.MAC, state))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
