package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lessonUDP shows datagrams: four writes are four reads, where TCP makes them one
// stream; a datagram too large for one packet is refused; and a datagram to
// nobody is lost without a word to an unconnected sender.
var lessonUDP = Lesson{
	Name:    "udp",
	Title:   "datagrams keep their boundaries, and nothing reports a loss",
	Section: "1.4, 5.3",
	Run:     runUDP,
}

// udpObservations is what the udp lesson measured.
type udpObservations struct {
	// Writes are the sizes of the four writes, the same for UDP and TCP.
	Writes []int
	// UDPReads are the sizes of the reads that received them over UDP.
	UDPReads []int
	// TCPReads are the sizes of the reads over TCP, made once all the
	// bytes had arrived.
	TCPReads []int

	// MaxDatagram is the largest payload sent and then read in one piece.
	MaxDatagram int
	// OversizeErr is what writing MaxDatagram+1 bytes returned: EMSGSIZE.
	OversizeErr error

	// UnconnectedErr is what an unconnected socket's send to a port where
	// nobody listens returned (nil), and UnconnectedLaterErr what its next
	// read saw (a timeout: nothing came back).
	UnconnectedErr, UnconnectedLaterErr error
	// ConnectedLaterErr is what a connected socket's read saw after the
	// same send: ECONNREFUSED, from the ICMP error loopback returns.
	ConnectedLaterErr error
}

// Summary implements Observations.
func (o *udpObservations) Summary() string {
	return fmt.Sprintf("4 writes -> %s over UDP, %s over TCP; %d-byte datagram ok, one more: %s; send to nobody: %s",
		count(len(o.UDPReads), "read"), count(len(o.TCPReads), "read"), o.MaxDatagram, errText(o.OversizeErr), errText(o.UnconnectedErr))
}

// udpLines are four lines of text, the tutorial's example of what UDP would
// send as four writes and read as four reads (section 1.4).
var udpLines = []string{"moon, sun\n", "and\n", "stars\n", "and the planets\n"}

// maxUDPv4 is the largest UDP payload over IPv4: 65535 bytes of IP packet
// less a 20-byte IP header and an 8-byte UDP header.
const maxUDPv4 = 65535 - 20 - 8

func runUDP(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &udpObservations{}
	for _, l := range udpLines {
		obs.Writes = append(obs.Writes, len(l))
	}

	p.tutorial("under UDP, four writes are four reads; under TCP the reader cannot know how many (section 1.4).")
	if err := udpBoundaries(ctx, obs); err != nil {
		return nil, err
	}
	p.do("write four lines of %s bytes to a UDP socket and to a TCP connection, then read.", joinInts(obs.Writes))
	p.saw("UDP: %s of %s bytes.", count(len(obs.UDPReads), "read"), joinInts(obs.UDPReads))
	p.saw("TCP: %s of %s bytes: the boundaries are gone.", count(len(obs.TCPReads), "read"), joinInts(obs.TCPReads))

	p.tutorial("an n-byte UDP message is sent in one piece and received as such (section 5.3).")
	if err := udpOversize(ctx, obs); err != nil {
		return nil, err
	}
	p.do("send datagrams of %d and %d bytes on loopback.", maxUDPv4, maxUDPv4+1)
	p.saw("%d bytes arrived in one read; %d bytes were refused at once: %s.", obs.MaxDatagram, maxUDPv4+1, errText(obs.OversizeErr))

	p.tutorial("a message might get lost, and the sender would never know (section 1.4).")
	if err := udpLost(ctx, obs); err != nil {
		return nil, err
	}
	p.do("send a datagram to a loopback port where nobody listens, from an unconnected and a connected socket.")
	p.saw("unconnected: the send said %s, and the next read got %s.", errText(obs.UnconnectedErr), errText(obs.UnconnectedLaterErr))
	p.saw("connected: the next read got %q: loopback's ICMP error reaches only a connected socket.", errText(obs.ConnectedLaterErr))
	p.note("net.DialUDP gives a connected socket (Read, Write); net.ListenUDP an unconnected one (ReadFrom, WriteTo).")
	p.note("Neither retransmits: reliability over UDP is yours to build.")
	return obs, p.err()
}

// udpPair returns an unconnected loopback socket, as the tutorial's UDP
// server has, and a client connected to it, as a net.DialUDP user has.
func udpPair() (srv, cl *net.UDPConn, err error) {
	srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, fmt.Errorf("listen udp: %w", err)
	}
	cl, err = net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		srv.Close()
		return nil, nil, fmt.Errorf("dial udp: %w", err)
	}
	return srv, cl, nil
}

func udpBoundaries(ctx context.Context, obs *udpObservations) error {
	srv, cl, err := udpPair()
	if err != nil {
		return err
	}
	defer srv.Close()
	defer cl.Close()
	for _, l := range udpLines {
		if _, err := cl.Write([]byte(l)); err != nil {
			return fmt.Errorf("udp write: %w", err)
		}
	}
	srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64<<10)
	for range udpLines {
		n, _, err := srv.ReadFromUDP(buf)
		if err != nil {
			return fmt.Errorf("udp read %d: %w", len(obs.UDPReads)+1, err)
		}
		obs.UDPReads = append(obs.UDPReads, n)
	}

	client, server, err := tcpPair(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	defer server.Close()
	total := 0
	for _, l := range udpLines {
		if _, err := client.Write([]byte(l)); err != nil {
			return fmt.Errorf("tcp write: %w", err)
		}
		total += len(l)
	}
	client.CloseWrite()
	// Wait until every byte is in the receiver's buffer, so the reads show
	// what TCP keeps (the bytes), not how fast they came.
	if err := waitQueued(ctx, server, total); err != nil {
		return err
	}
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, err := server.Read(buf)
		if n > 0 {
			obs.TCPReads = append(obs.TCPReads, n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tcp read: %w", err)
		}
	}
}

// waitQueued waits up to two seconds until conn's receive queue holds n
// bytes (the SIOCINQ ioctl, FIONREAD).
func waitQueued(ctx context.Context, conn *net.TCPConn, n int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		var queued int
		var qerr error
		if err := raw.Control(func(fd uintptr) {
			queued, qerr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		}); err != nil || qerr != nil {
			return fmt.Errorf("SIOCINQ: %w", errors.Join(err, qerr))
		}
		if queued >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d bytes arrived", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func udpOversize(_ context.Context, obs *udpObservations) error {
	srv, cl, err := udpPair()
	if err != nil {
		return err
	}
	defer srv.Close()
	defer cl.Close()
	big := []byte(strings.Repeat("x", maxUDPv4+1))
	if _, err := cl.Write(big[:maxUDPv4]); err != nil {
		return fmt.Errorf("write %d bytes: %w", maxUDPv4, err)
	}
	srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1<<17)
	n, _, err := srv.ReadFromUDP(buf)
	if err != nil {
		return fmt.Errorf("read the %d-byte datagram: %w", maxUDPv4, err)
	}
	obs.MaxDatagram = n
	_, obs.OversizeErr = cl.Write(big)
	return nil
}

func udpLost(_ context.Context, obs *udpObservations) error {
	// A port that was free a moment ago: bind one, note it, let it go.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("listen udp: %w", err)
	}
	nobody := probe.LocalAddr().(*net.UDPAddr)
	probe.Close()

	un, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("listen udp: %w", err)
	}
	defer un.Close()
	_, obs.UnconnectedErr = un.WriteToUDP([]byte("hello?"), nobody)
	un.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _, obs.UnconnectedLaterErr = un.ReadFromUDP(make([]byte, 64))

	co, err := net.DialUDP("udp4", nil, nobody)
	if err != nil {
		return fmt.Errorf("dial udp: %w", err)
	}
	defer co.Close()
	if _, err := co.Write([]byte("hello?")); err != nil {
		obs.ConnectedLaterErr = err // the error can already be there
		return nil
	}
	co.SetReadDeadline(time.Now().Add(time.Second))
	_, obs.ConnectedLaterErr = co.Read(make([]byte, 64))
	if errors.Is(obs.ConnectedLaterErr, os.ErrDeadlineExceeded) {
		obs.ConnectedLaterErr = fmt.Errorf("nothing within 1s: %w", obs.ConnectedLaterErr)
	}
	return nil
}
