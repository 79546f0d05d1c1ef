package demo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/tcplab/tcplab/internal/capture"
	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/seqplot"
)

// The lessons on the lab link capture its frames, as tcpdump would, with
// an AF_PACKET socket on one side's veth, made inside that side's
// namespace: it sees the lab's frames and nothing of the host's. What the
// capture shows is printed under the lesson's Seen: lines; with --out the
// lesson writes LESSON.pcap (for Wireshark, or tcpdump -r) and
// LESSON-seq.png, the time-sequence graph (internal/seqplot).

// wireSeen is what a lesson's capture showed.
type wireSeen struct {
	// Iface is where the capture was taken ("veth-b in tcplab-...-b").
	Iface string
	// Record is the capture; Packets its frames decoded.
	Record  *capture.Record
	Packets []capture.Packet
	// Trace is the lesson's transfer, in the direction of its data.
	Trace *capture.Trace
	// PcapPath and PlotPath are the files written, empty without --out.
	PcapPath, PlotPath string
	// Drawn is what the graph drew, a panel per trace.
	Drawn []seqplot.Drawn
}

// startCapture starts capturing on h's veth, inside h's namespace.
func startCapture(h *netlab.Host) (*capture.Capture, error) {
	var c *capture.Capture
	err := h.Do(func() error {
		var err error
		c, err = capture.Start(h.Dev, capture.Limits{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	return c, nil
}

// finishCapture waits until c holds the close of each connection, stops
// it, and decodes what it kept.
func finishCapture(ctx context.Context, c *capture.Capture, h *netlab.Host, conns ...capture.Conn) (*wireSeen, error) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, conn := range conns {
		if err := c.WaitClosed(wctx, conn); err != nil {
			c.Stop()
			return nil, err
		}
	}
	rec, err := c.Stop()
	if err != nil {
		return nil, err
	}
	if rec.Over > 0 || rec.KernelDrops > 0 {
		return nil, fmt.Errorf("capture on %s: %d frames past its bounds, %d dropped by the kernel", h.Dev, rec.Over, rec.KernelDrops)
	}
	return &wireSeen{Iface: h.Dev + " in " + h.Name, Record: rec, Packets: rec.Packets()}, nil
}

// connOf names a connection by its two ends as c (the client) sees them.
func connOf(c net.Conn) capture.Conn {
	return capture.Conn{Client: addrPortOf(c.LocalAddr()), Server: addrPortOf(c.RemoteAddr())}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// writeWire writes the capture and, when panels are given, its graph to
// opts.OutDir as NAME.pcap and NAME-seq.png, and narrates where they are.
func writeWire(p *page, w *wireSeen, opts Options, name string, panels ...seqplot.Panel) error {
	if opts.OutDir == "" {
		return nil
	}
	w.PcapPath = filepath.Join(opts.OutDir, name+".pcap")
	if err := w.Record.WritePcap(w.PcapPath); err != nil {
		return err
	}
	if len(panels) == 0 {
		p.saw("the capture is in %s (wireshark %s, or tcpdump -r %s).", w.PcapPath, filepath.Base(w.PcapPath), filepath.Base(w.PcapPath))
		return nil
	}
	w.PlotPath = filepath.Join(opts.OutDir, name+"-seq.png")
	drawn, err := seqplot.Write(w.PlotPath, panels...)
	if err != nil {
		return err
	}
	w.Drawn = drawn
	p.saw("the capture is in %s, its time-sequence graph in %s.", w.PcapPath, filepath.Base(w.PlotPath))
	return nil
}

// summarizeTrace narrates a transfer as the capture saw it: segments and
// their sizes, ACKs, what was sent again, the round trips.
func summarizeTrace(p *page, w *wireSeen, who string) {
	t := w.Trace
	sizes := t.SegmentSizes()
	p.saw("on the wire (captured on %s): %s; %s from %s carrying %s,",
		w.Iface, count(len(w.Record.Frames), "frame"), count(len(t.Data), "data segment"), who, byteCount(t.Bytes()))
	p.saw("  sizes %s; %s back; %s.",
		sizeSummary(sizes), count(len(t.Acks), "ACK"), resentText(t.Retransmissions()))
	rtts := t.RTTs()
	if len(rtts) > 0 {
		slices.Sort(rtts)
		p.saw("  round trip: handshake %s; a segment to the ACK that covers it: median %s, min %s, max %s.",
			ms(t.Handshake), ms(rtts[len(rtts)/2]), ms(rtts[0]), ms(rtts[len(rtts)-1]))
	}
}

// sizeSummary prints segment sizes as "20 of 1448, 1 of 1056".
func sizeSummary(sizes []int) string {
	counts := map[int]int{}
	var order []int
	for _, s := range sizes {
		if counts[s] == 0 {
			order = append(order, s)
		}
		counts[s]++
	}
	slices.SortFunc(order, func(a, b int) int { return counts[b] - counts[a] })
	s := ""
	for i, n := range order {
		if i == 3 {
			s += fmt.Sprintf(", %d other sizes", len(order)-3)
			break
		}
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d of %d bytes", counts[n], n)
	}
	return s
}

func resentText(n int) string {
	if n == 0 {
		return "none sent again"
	}
	return count(n, "segment") + " sent again"
}
