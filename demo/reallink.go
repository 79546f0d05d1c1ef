package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/multicopy"
	"github.com/tcplab/tcplab/stream"
)

// The two lessons below run on a real link, not on loopback: two network
// namespaces joined by a veth pair (internal/netlab), MTU 1500 and one
// TCP segment per packet, as on Ethernet. Making one needs root; without
// it each lesson says so in one line and reports itself skipped.

// Link shows chunks on a 1500-byte-MTU link at a low rate: the reader
// wakes for each segment and gets one segment's worth per read, where
// loopback hands over the whole answer at once.
var Link = Lesson{
	Name:    "link",
	Title:   "chunks on a real link: one segment per read",
	Section: "1.4, 2.2",
	Run:     runLink,
}

// Loss shows the same message crossing a link that drops 5% of packets
// each way: it arrives intact, and TCP_INFO counts what TCP sent again.
var Loss = Lesson{
	Name:    "loss",
	Title:   "a lossy link: every byte arrives, some of them twice sent",
	Section: "1.3, 2",
	Run:     runLoss,
}

// LinkObservations is what the link lesson measured.
type LinkObservations struct {
	// Skipped is why the lesson could not make a link; the rest is then
	// empty.
	Skipped string
	// Loopback and Link are the client's reads of the same answer, on
	// loopback and over the link.
	Loopback, Link stream.ChunkStats
	// MSS is the segment size the client received on the link (TCP_INFO
	// tcpi_rcv_mss).
	MSS int
	// RateBits is the link's rate, bits per second.
	RateBits int64
}

// Summary implements Observations.
func (o *LinkObservations) Summary() string {
	if o.Skipped != "" {
		return "skipped: " + o.Skipped
	}
	return fmt.Sprintf("loopback %s in %s, link %s in %s of median %d (MSS %d)",
		byteCount(o.Loopback.Total()), count(o.Loopback.Count(), "read"),
		byteCount(o.Link.Total()), count(o.Link.Count(), "read"), o.Link.Median(), o.MSS)
}

// LossObservations is what the loss lesson measured.
type LossObservations struct {
	Skipped string
	// Loss is the probability of a drop, each way.
	Loss float64
	// Expected and Received are the answer's bytes; Exact says every one
	// matched (multicopy.Verifier).
	Expected, Received int64
	Exact              bool
	// Segments is about how many segments the server sent; Retransmits
	// how many it sent again (tcpi_total_retrans) and OutOfOrder how many
	// packets the client received ahead of a gap (tcpi_rcv_ooopack).
	Segments, Retransmits, OutOfOrder int64
	Elapsed                           time.Duration
}

// Summary implements Observations.
func (o *LossObservations) Summary() string {
	if o.Skipped != "" {
		return "skipped: " + o.Skipped
	}
	exact := "intact"
	if !o.Exact {
		exact = "NOT intact"
	}
	return fmt.Sprintf("%s %s at %.0f%% loss each way, %d of about %d segments sent again",
		byteCount(o.Received), exact, o.Loss*100, o.Retransmits, o.Segments)
}

// linkRate is the link lesson's rate: slow enough that the reader always
// catches up with the link and gets one segment per read (a segment every
// 12 ms), fast enough for a short lesson (30 kB in a quarter of a second).
const linkRate = 1_000_000

// linkMessage, sent back linkCopies times, is the answer both lessons
// use on loopback and on the link: the tutorial's "abc", 10,000 times.
const (
	linkMessage = "abc"
	linkCopies  = multicopy.DefaultCopies
)

// skipLab checks that a link can be made, and narrates the one line why
// not if it cannot.
func skipLab(p *page) string {
	if err := netlab.Check(); err != nil {
		reason := strings.TrimPrefix(err.Error(), "netlab: ")
		p.line("Skipped:  ", "this lesson needs a real link made of two network namespaces; %s.", reason)
		return reason
	}
	return ""
}

func runLink(ctx context.Context, w io.Writer, opts Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &LinkObservations{RateBits: linkRate}
	p.tutorial("the network, not the sender, decides the chunks (sections 1.4, 2.2).")
	if obs.Skipped = skipLab(p); obs.Skipped != "" {
		return obs, p.err()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	p.do("tmc sends %q to tms on loopback, which sends it back %d times.", linkMessage, linkCopies)
	addr, stop, err := startMulticopy(ctx, &multicopy.Server{})
	if err != nil {
		return nil, err
	}
	r, err := fetchCopies(ctx, addr, linkMessage, linkCopies)
	stop()
	if err != nil {
		return nil, err
	}
	obs.Loopback = r.Stats
	p.saw("loopback: %s in %s, the largest %s: loopback's MTU is 64 kB.",
		byteCount(r.Stats.Total()), count(r.Stats.Count(), "read"), byteCount(int64(r.Stats.Max())))

	l, err := netlab.New()
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if err := l.B.SetRate(linkRate, time.Second); err != nil {
		return nil, err
	}
	p.do("the same over a link of MTU %d at %s (namespaces %s and %s).", netlab.MTU, rateText(linkRate), l.A.Name, l.B.Name)
	res, st, _, err := fetchOverLink(ctx, l, linkMessage, linkCopies)
	if err != nil {
		return nil, err
	}
	obs.Link, obs.MSS = res.Stats, st.RcvMSS
	p.saw("link: %s in %s: median %d bytes, largest %d; first reads %s",
		byteCount(res.Stats.Total()), count(res.Stats.Count(), "read"), res.Stats.Median(), res.Stats.Max(), firstSizes(res.Stats.Sizes, 5))
	p.saw("a segment is %d bytes here (1500, less 20 of IP, 20 of TCP and 12 of timestamps): the reader", st.RcvMSS)
	p.saw("is woken for each one and gets it alone, a read every %s (a segment takes %s at %s).",
		ms(res.Stats.Span()/time.Duration(max(1, res.Stats.Count()-1))), ms(segmentTime(st.RcvMSS)), rateText(linkRate))
	p.note("the loop on Read is the same; only the sizes changed. Never assume one write is one read.")
	return obs, p.err()
}

// rateText prints a link rate in bits per second.
func rateText(bits int64) string {
	if bits >= 1_000_000 && bits%1_000_000 == 0 {
		return fmt.Sprintf("%d Mbit/s", bits/1_000_000)
	}
	return fmt.Sprintf("%d kbit/s", bits/1000)
}

// segmentTime is how long one segment of mss bytes (plus 52 bytes of
// headers and 14 of Ethernet) takes at linkRate.
func segmentTime(mss int) time.Duration {
	return time.Duration(float64((mss+66)*8) / linkRate * float64(time.Second))
}

func runLoss(ctx context.Context, w io.Writer, opts Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	const loss = 0.05
	// 300 kB: about 210 segments, so some are lost on every run (the
	// chance that none of them is: 1 in 50,000).
	msg := strings.Repeat("0123456789", 10)
	const copies = 3000
	obs := &LossObservations{Loss: loss, Expected: int64(len(msg)) * copies}
	p.tutorial("TCP is reliable: the bytes arrive, in order, whatever the network drops (sections 1.3, 2).")
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
	for _, h := range []*netlab.Host{l.A, l.B} {
		if err := h.SetLoss(loss); err != nil {
			return nil, err
		}
	}
	p.do("tmc sends a %d-byte string to tms across a link that drops %.0f%% of the packets each way", len(msg), loss*100)
	p.do("at random (iptables); tms sends it back %d times (%s).", copies, byteCount(obs.Expected))
	res, cst, sst, err := fetchOverLink(ctx, l, msg, copies)
	if err != nil {
		return nil, err
	}
	obs.Received, obs.Elapsed = res.Stats.Total(), res.Elapsed
	obs.Exact = res.exact
	obs.Retransmits, obs.OutOfOrder = sst.Retransmits, cst.OutOfOrderPackets
	obs.Segments = (obs.Expected + int64(sst.SndMSS) - 1) / int64(max(1, sst.SndMSS))
	verdict := "every copy exact"
	if !obs.Exact {
		verdict = "NOT whole copies"
	}
	p.saw("%s received in %s, %s.", byteCount(obs.Received), ms(res.Elapsed), verdict)
	p.saw("TCP_INFO: the server sent %d of its about %d segments again (tcpi_total_retrans);",
		obs.Retransmits, obs.Segments)
	p.saw("the client received %d packets ahead of a gap (tcpi_rcv_ooopack) and held them until the gap was filled.", obs.OutOfOrder)
	p.note("a read never shows a loss: only the time it took. tcplab tms waits out retransmissions before")
	p.note("it takes a quiet spell as the end of a message (stream.EndWait); see docs/reliability.md.")
	return obs, p.err()
}

// linkResult is one transfer over a lab link.
type linkResult struct {
	*multicopy.Result
	exact bool
}

// fetchOverLink serves msg copies times from side B of l with tms and
// fetches it from side A with tmc; it returns what the client saw and
// both ends' TCP statistics, read just before they close.
func fetchOverLink(ctx context.Context, l *netlab.Link, msg string, copies int64) (linkResult, stream.TCPStats, stream.TCPStats, error) {
	var client, srvStats stream.TCPStats
	ln, err := l.B.Listen(0)
	if err != nil {
		return linkResult{}, client, srvStats, err
	}
	defer ln.Close()
	type served struct {
		st  stream.TCPStats
		err error
	}
	done := make(chan served, 1)
	go func() {
		ln.SetDeadline(time.Now().Add(lessonTimeout))
		c, err := ln.Accept()
		if err != nil {
			done <- served{err: err}
			return
		}
		defer c.Close()
		s := &multicopy.Server{Copies: copies}
		_, err = s.Echo(ctx, c)
		st, _ := stream.ReadTCPStats(c)
		done <- served{st, err}
	}()
	conn, err := l.A.Dial(ctx, ln.Addr().String())
	if err != nil {
		ln.Close()
		<-done
		return linkResult{}, client, srvStats, err
	}
	defer conn.Close()
	v := multicopy.NewVerifier([]byte(msg))
	res, err := multicopy.Fetch(ctx, conn, []byte(msg), 10*time.Second, 0, func(chunk []byte) { v.Write(chunk) })
	if err != nil {
		conn.Close()
		<-done
		return linkResult{}, client, srvStats, fmt.Errorf("tmc over the link: %w", err)
	}
	client, _ = stream.ReadTCPStats(conn)
	sv := <-done
	if sv.err != nil {
		return linkResult{}, client, srvStats, fmt.Errorf("tms over the link: %w", sv.err)
	}
	exact := v.Err() == nil && res.Stats.Total() == int64(len(msg))*copies
	return linkResult{res, exact}, client, sv.st, nil
}
