// Package capture records the frames that cross one network interface, as
// tcpdump does, and reads back out of them what the lessons talk about:
// ARP requests and replies, and each TCP segment with its sequence number,
// acknowledgement, window and flags (decode.go); and for one direction of a
// connection, the story a time-sequence graph draws: the data sent, what
// was sent again, the ACKs and the receive window, the round-trip times
// (trace.go). WritePcap saves a capture for Wireshark or tcpdump.
//
// A capture is an AF_PACKET socket bound to one interface (socket.go: pure
// Go, no libpcap), in the network namespace of the thread that calls Start: started inside a lab namespace
// (internal/netlab's Host.Do), it sees that namespace's veth and nothing
// else, and keeps seeing it from any goroutine. It is bounded by Limits
// (frames and bytes kept, bytes kept per frame); the frame that passes a
// bound, and every one after it, is counted, not kept, so what is kept is
// the start of the traffic without holes.
//
// Frames are parsed with gopacket's layers, not by hand.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcplab/tcplab/internal/wholefile"
)

// Limits bound what a capture keeps.
type Limits struct {
	// Frames is the most frames kept; later ones are counted in
	// Record.Over. 0 means DefaultLimits.Frames.
	Frames int
	// Bytes is the most frame bytes kept in all; the first frame that
	// would pass it and all later ones are counted in Record.Over. 0
	// means DefaultLimits.Bytes.
	Bytes int64
	// Snaplen is the most bytes kept of one frame, as tcpdump's -s.
	// 0 means DefaultLimits.Snaplen.
	Snaplen int
}

// DefaultLimits keep whole Ethernet frames of a lesson's transfer: the
// largest lesson sends about 300 kB in about 450 frames.
var DefaultLimits = Limits{Frames: 20_000, Bytes: 32 << 20, Snaplen: 1514}

func (l Limits) orDefaults() Limits {
	if l.Frames <= 0 {
		l.Frames = DefaultLimits.Frames
	}
	if l.Bytes <= 0 {
		l.Bytes = DefaultLimits.Bytes
	}
	if l.Snaplen <= 0 {
		l.Snaplen = DefaultLimits.Snaplen
	}
	return l
}

// Frame is one frame as captured.
type Frame struct {
	// At is the kernel's timestamp (SO_TIMESTAMPNS).
	At time.Time
	// Data is the frame from its Ethernet header on, at most
	// Limits.Snaplen bytes of it.
	Data []byte
	// Length is the frame's whole length on the wire.
	Length int
}

// Record is a finished capture.
type Record struct {
	// Iface is the interface captured.
	Iface string
	// Frames are the frames kept, in the order the kernel handed them over.
	Frames []Frame
	// Over counts the frames seen past Limits and not kept.
	Over int
	// KernelDrops counts frames the kernel dropped because the socket's
	// queue was full (PACKET_STATISTICS).
	KernelDrops int
	// Snaplen is the per-frame bound the frames were kept under.
	Snaplen int
}

// Capture is a capture in progress. Stop it.
type Capture struct {
	h     *packetSocket
	iface string
	lim   Limits

	mu      sync.Mutex
	frames  []Frame
	kept    int64
	over    int
	changed chan struct{} // closed and replaced at every new frame
	readErr error

	done    chan struct{}
	stopped bool
}

// Start begins capturing every frame, in and out, on the interface called
// iface in the calling thread's network namespace. It needs CAP_NET_RAW.
func Start(iface string, lim Limits) (*Capture, error) {
	lim = lim.orDefaults()
	h, err := openPacketSocket(iface, lim.Snaplen)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", iface, err)
	}
	c := &Capture{h: h, iface: iface, lim: lim, changed: make(chan struct{}), done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *Capture) read() {
	defer close(c.done)
	for {
		f, err := c.h.read()
		if err != nil {
			c.mu.Lock()
			// After Stop the error is the closed socket's: the end, not
			// a failure.
			if !c.stopped {
				c.readErr = err
			}
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		// Past a limit, nothing more is kept, even a frame that would fit:
		// a capture is the start of the traffic, without holes.
		if c.over > 0 || len(c.frames) >= c.lim.Frames || c.kept+int64(len(f.Data)) > c.lim.Bytes {
			c.over++
		} else {
			c.frames = append(c.frames, f)
			c.kept += int64(len(f.Data))
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// ErrNotSeen is WaitFor's error when its context ends first.
var ErrNotSeen = errors.New("capture: the frame waited for was not seen")

// WaitFor waits until a frame kept so far, or a later one, satisfies
// match, and returns nil; or returns ErrNotSeen (wrapping ctx's error) when
// ctx ends first, or at once when the capture is past its limits and so
// keeps no later frame. A lesson waits this way for the last frame it
// expects (the ACK of a FIN) before it stops the capture, so nothing it
// asserts about is still on its way to the socket.
func (c *Capture) WaitFor(ctx context.Context, match func(Frame) bool) error {
	next := 0
	for {
		c.mu.Lock()
		frames, changed, err, over, kept := c.frames[next:], c.changed, c.readErr, c.over, c.kept
		c.mu.Unlock()
		for _, f := range frames {
			if match(f) {
				return nil
			}
		}
		next += len(frames)
		if err != nil {
			return fmt.Errorf("capture on %s: %w", c.iface, err)
		}
		if over > 0 {
			return fmt.Errorf("%w: the capture on %s is full (%d frames, %d bytes kept; the limits are %d and %d): %d later frames were not kept",
				ErrNotSeen, c.iface, next, kept, c.lim.Frames, c.lim.Bytes, over)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotSeen, ctx.Err())
		case <-c.done:
			// Read what came in before the reader stopped, then give up.
			c.mu.Lock()
			frames = c.frames[next:]
			c.mu.Unlock()
			for _, f := range frames {
				if match(f) {
					return nil
				}
			}
			return fmt.Errorf("%w: the capture stopped", ErrNotSeen)
		}
	}
}

// WaitForTCP is WaitFor for a frame holding a TCP segment that satisfies
// match.
func (c *Capture) WaitForTCP(ctx context.Context, match func(*Segment) bool) error {
	return c.WaitFor(ctx, func(f Frame) bool {
		p := Decode(f)
		return p.TCP != nil && match(p.TCP)
	})
}

// Stop ends the capture and returns what it kept. It may be called more
// than once; later calls return the same record.
func (c *Capture) Stop() (*Record, error) {
	c.mu.Lock()
	first := !c.stopped
	c.stopped = true
	c.mu.Unlock()
	var drops int
	if first {
		drops = c.h.drops()
		c.h.close()
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := &Record{Iface: c.iface, Frames: c.frames, Over: c.over, KernelDrops: drops, Snaplen: c.lim.Snaplen}
	if c.readErr != nil {
		return rec, fmt.Errorf("capture on %s: %w", c.iface, c.readErr)
	}
	return rec, nil
}

// WritePcap writes the record to path in the classic pcap format
// (microsecond timestamps, Ethernet link type), which Wireshark, tcpdump
// and every other capture tool read. The file is written whole or not at
// all (internal/wholefile): a full disk leaves no cut-off capture.
func (r *Record) WritePcap(path string) error {
	err := wholefile.Write(path, func(f io.Writer) error {
		w := pcapgo.NewWriter(f)
		if err := w.WriteFileHeader(uint32(r.Snaplen), layers.LinkTypeEthernet); err != nil {
			return err
		}
		for _, fr := range r.Frames {
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: fr.At, CaptureLength: len(fr.Data), Length: fr.Length}, fr.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	return nil
}

// ReadPcap reads a pcap file written by WritePcap (or by tcpdump on an
// Ethernet interface) back into a record.
func ReadPcap(path string) (*Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("pcap %s: %w", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("pcap %s: link type %v, want Ethernet", path, r.LinkType())
	}
	rec := &Record{Snaplen: int(r.Snaplen())}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return rec, nil
			}
			return nil, fmt.Errorf("pcap %s: %w", path, err)
		}
		rec.Frames = append(rec.Frames, Frame{At: ci.Timestamp, Data: data, Length: ci.Length})
	}
}

// WaitClosed waits until the capture holds the end of connection c: a
// FIN each way and the ACK of the later one, or an RST. See WaitFor.
func (c *Capture) WaitClosed(ctx context.Context, conn Conn) error {
	finEnd := map[netip.AddrPort]uint32{} // sender -> the number after its FIN
	err := c.WaitForTCP(ctx, func(s *Segment) bool {
		in := (s.Src == conn.Client && s.Dst == conn.Server) || (s.Src == conn.Server && s.Dst == conn.Client)
		if !in {
			return false
		}
		if s.RST {
			return true
		}
		if s.FIN {
			finEnd[s.Src] = s.Seq + uint32(s.Payload) + 1
		}
		if len(finEnd) < 2 || !s.ACK {
			return false
		}
		// Done when each side has acknowledged the other's FIN: s acks
		// its peer's FIN, and the peer already acked s's (it sent its FIN
		// after, or with, that ACK, as the later closer does).
		end, ok := finEnd[s.Dst]
		return ok && int32(s.Ack-end) >= 0 && c.acked(conn, s.Src, finEnd[s.Src])
	})
	if err != nil {
		return fmt.Errorf("waiting for the close of %v - %v: %w", conn.Client, conn.Server, err)
	}
	return nil
}

// acked says whether the frames kept hold an ACK from the peer of from
// that covers end.
func (c *Capture) acked(conn Conn, from netip.AddrPort, end uint32) bool {
	peer := conn.Client
	if from == conn.Client {
		peer = conn.Server
	}
	c.mu.Lock()
	frames := c.frames
	c.mu.Unlock()
	for i := len(frames) - 1; i >= 0; i-- {
		p := Decode(frames[i])
		if s := p.TCP; s != nil && s.Src == peer && s.Dst == from && s.ACK && int32(s.Ack-end) >= 0 {
			return true
		}
	}
	return false
}
