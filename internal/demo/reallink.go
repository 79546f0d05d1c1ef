package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/capture"
	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/seqplot"
	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/multicopy"
	"github.com/tcplab/tcplab/stream"
)

// The two lessons below run on a real link, not on loopback: two network
// namespaces joined by a veth pair (internal/netlab), MTU 1500 and one
// TCP segment per packet, as on Ethernet. Making one needs root; without
// it each lesson says so in one line and reports itself skipped.

// lessonLink shows chunks on a 1500-byte-MTU link at a low rate: the reader
// wakes for each segment and gets one segment's worth per read, where
// loopback hands over the whole answer at once.
var lessonLink = Lesson{
	Name:        "link",
	Title:       "chunks on a real link: reads of whole segments, one at a time",
	Section:     "1.4, 2.2",
	WritesFiles: true,
	Run:         runLink,
}

// lessonLoss shows the same message crossing a link that drops 5% of packets
// each way: it arrives intact, and TCP_INFO counts what TCP sent again.
var lessonLoss = Lesson{
	Name:        "loss",
	Title:       "a lossy link: every byte arrives, some of them twice sent",
	Section:     "1.3, 2",
	WritesFiles: true,
	Run:         runLoss,
}

// linkObservations is what the link lesson measured.
type linkObservations struct {
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

	// wire is what the capture on the sender's veth saw.
	wire *wireSeen
	// readsOfSegments: each read returned whole captured segments, the
	// next ones in order; oneSegmentReads of them returned exactly one.
	readsOfSegments bool
	oneSegmentReads int
}

// Summary implements Observations.
func (o *linkObservations) Summary() string {
	if o.Skipped != "" {
		return "skipped: " + o.Skipped
	}
	return fmt.Sprintf("loopback %s in %s, link %s in %s of median %d (MSS %d)",
		byteCount(o.Loopback.Total()), count(o.Loopback.Count(), "read"),
		byteCount(o.Link.Total()), count(o.Link.Count(), "read"), o.Link.Median(), o.MSS)
}

// lossObservations is what the loss lesson measured.
type lossObservations struct {
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

	// wire is what the capture on the sender's veth saw; stall is the
	// longest time the sender sent nothing, ending in a retransmission.
	wire  *wireSeen
	stall seqplot.Span
}

// Summary implements Observations.
func (o *lossObservations) Summary() string {
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
	obs := &linkObservations{RateBits: linkRate}
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
	p.do("the same over a link of MTU %d at %s (namespaces %s and %s), capturing its frames.", netlab.MTU, rateText(linkRate), l.A.Name, l.B.Name)
	c, err := startCapture(l.B)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	res, st, _, err := fetchOverLink(ctx, l, linkMessage, linkCopies)
	if err != nil {
		return nil, err
	}
	if obs.wire, err = finishCapture(ctx, c, l.B, res.conn); err != nil {
		return nil, err
	}
	obs.wire.Trace = capture.TraceOf(obs.wire.Packets, res.conn.Server, res.conn.Client)
	obs.Link, obs.MSS = res.Stats, st.RcvMSS
	p.saw("link: %s in %s: median %d bytes, largest %d; first reads %s",
		byteCount(res.Stats.Total()), count(res.Stats.Count(), "read"), res.Stats.Median(), res.Stats.Max(), firstSizes(res.Stats.Sizes, 5))
	p.saw("a segment is %d bytes here (1500, less 20 of IP, 20 of TCP and 12 of timestamps): the reader", st.RcvMSS)
	p.saw("is woken as segments arrive, a read every %s (a segment takes %s at %s).",
		ms(res.Stats.Span()/time.Duration(max(1, res.Stats.Count()-1))), ms(segmentTime(st.RcvMSS)), rateText(linkRate))
	summarizeTrace(p, obs.wire, "tms")
	tr := obs.wire.Trace
	obs.readsOfSegments, obs.oneSegmentReads = readsInSegments(res.Stats.Sizes, tr.SegmentSizes())
	if obs.readsOfSegments {
		p.saw("every read ended where a segment ended: %d of the %s held exactly one segment, the rest",
			obs.oneSegmentReads, count(res.Stats.Count(), "read"))
		p.saw("  the few that came while the reader was busy. The network cut the chunks.")
	} else {
		p.saw("the reads do not line up with the captured segments.")
	}
	if err := writeWire(p, obs.wire, opts, "link", seqplot.Panel{
		Title: fmt.Sprintf("link: tms sends %s at %s, %s", byteCount(tr.Bytes()), rateText(linkRate), count(len(tr.Data), "segment")),
		Trace: tr,
	}); err != nil {
		return nil, err
	}
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
	obs := &lossObservations{Loss: loss, Expected: int64(len(msg)) * copies}
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
	p.do("at random (iptables); tms sends it back %d times (%s). We capture on tms's side.", copies, byteCount(obs.Expected))
	c, err := startCapture(l.B)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	res, cst, sst, err := fetchOverLink(ctx, l, msg, copies)
	if err != nil {
		return nil, err
	}
	if obs.wire, err = finishCapture(ctx, c, l.B, res.conn); err != nil {
		return nil, err
	}
	obs.wire.Trace = capture.TraceOf(obs.wire.Packets, res.conn.Server, res.conn.Client)
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
	summarizeTrace(p, obs.wire, "tms")
	tr := obs.wire.Trace
	if more := int64(tr.Retransmissions()) - obs.Retransmits; more > 0 {
		p.saw("  (%d more than TCP_INFO's count, read when tms had handed its last byte to the kernel;", more)
		p.saw("  the capture goes on until the close.)")
	}
	if n := tr.Retransmissions(); n > 0 {
		timed := timerRetransmissions(tr)
		p.saw("  of the %s sent again, %d went out at once on duplicate ACKs (fast retransmit: the receiver's", count(n, "segment"), n-timed)
		p.saw("  ACKs, with SACK, said what was missing) and %d after a silence of 10 ms or more (a timer ran out).", timed)
	}
	obs.stall = longestStall(tr)
	if obs.stall.To > 0 {
		p.saw("  the longest silence: %s with nothing sent, then %s again: %s.",
			ms(obs.stall.To-obs.stall.From), stallWhat(tr, obs.stall), stallWhy(obs.stall))
	}
	if last := tr.Acks[len(tr.Acks)-1]; last.Ack >= tr.Bytes() {
		p.saw("  the last ACK covers all %s: every loss was recovered.", byteCount(tr.Bytes()))
	}
	panels := []seqplot.Panel{{
		Title: fmt.Sprintf("loss: tms sends %s through %.0f%% loss each way; %s, %s",
			byteCount(tr.Bytes()), loss*100, count(len(tr.Data), "segment"), resentText(tr.Retransmissions())),
		Trace: tr,
		Spans: stallSpans(tr),
	}}
	if z, ok := firstBurst(tr); ok {
		panels = append(panels, z)
	}
	if err := writeWire(p, obs.wire, opts, "loss", panels...); err != nil {
		return nil, err
	}
	p.note("a read never shows a loss: only the time it took. tcplab tms waits out retransmissions before")
	p.note("it takes a quiet spell as the end of a message (stream.EndWait); see docs/reliability.md.")
	return obs, p.err()
}

// linkResult is one transfer over a lab link.
type linkResult struct {
	*multicopy.Result
	exact bool
	// conn is the connection's two ends, tmc's first.
	conn capture.Conn
}

// fetchOverLink serves msg copies times from side B of l with tms and
// fetches it from side A with tmc; it returns what the client saw and
// both ends' TCP statistics, read just before they close.
func fetchOverLink(ctx context.Context, l *netlab.Link, msg string, copies int64) (linkResult, tcpsock.Stats, tcpsock.Stats, error) {
	var client, srvStats tcpsock.Stats
	ln, err := l.B.Listen(0)
	if err != nil {
		return linkResult{}, client, srvStats, err
	}
	defer ln.Close()
	type served struct {
		st  tcpsock.Stats
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
		st, _ := tcpsock.ReadStats(c)
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
	res, err := multicopy.Fetch(ctx, conn, []byte(msg), func(chunk []byte) { v.Write(chunk) }, multicopy.FetchOptions{IdleTimeout: 10 * time.Second})
	if err != nil {
		conn.Close()
		<-done
		return linkResult{}, client, srvStats, fmt.Errorf("tmc over the link: %w", err)
	}
	client, _ = tcpsock.ReadStats(conn)
	sv := <-done
	if sv.err != nil {
		return linkResult{}, client, srvStats, fmt.Errorf("tms over the link: %w", sv.err)
	}
	exact := v.Err() == nil && res.Stats.Total() == int64(len(msg))*copies
	return linkResult{res, exact, connOf(conn)}, client, sv.st, nil
}

// stalls are the times, of at least 10 ms, between two data segments
// the sender sent, when the second is a retransmission: a timer ran out.
func stalls(t *capture.Trace) []seqplot.Span {
	var out []seqplot.Span
	for i := 1; i < len(t.Data); i++ {
		d := t.Data[i]
		if d.Retransmitted && d.At-t.Data[i-1].At >= 10*time.Millisecond {
			out = append(out, seqplot.Span{From: t.Data[i-1].At, To: d.At, Seq: d.Seq})
		}
	}
	return out
}

// longestStall is the longest of the stalls, zero if there is none.
func longestStall(t *capture.Trace) seqplot.Span {
	var best seqplot.Span
	for _, s := range stalls(t) {
		if s.To-s.From > best.To-best.From {
			best = s
		}
	}
	return best
}

// stallWhat names the segment sent after a stall.
func stallWhat(t *capture.Trace, s seqplot.Span) string {
	for _, d := range t.Data {
		if d.At == s.To && d.Retransmitted {
			return fmt.Sprintf("bytes %d-%d", d.Seq, d.End()-1)
		}
	}
	return "a segment"
}

// stallWhy says what a stall of that length is: Linux's retransmission
// timer is at least 200 ms; a shorter one is the tail loss probe's,
// which sends the last segment again to draw an ACK.
func stallWhy(s seqplot.Span) string {
	if s.To-s.From >= 200*time.Millisecond {
		return "the retransmission timer ran out (at least 200 ms, doubled each time it runs out again)"
	}
	return "a probe timer ran out (tail loss probe: send the last segment again to draw an ACK)"
}

func stallSpans(t *capture.Trace) []seqplot.Span {
	var spans []seqplot.Span
	for _, s := range stalls(t) {
		s.Label = fmt.Sprintf("nothing sent for %s", ms(s.To-s.From))
		spans = append(spans, s)
	}
	return spans
}

// firstBurst magnifies the first burst of sending, up to the first
// silence of 10 ms or more: at the scale of a retransmission timer,
// dozens of segments sent in a millisecond are one vertical smear. No
// panel if the burst is most of the transfer anyway.
func firstBurst(t *capture.Trace) (seqplot.Panel, bool) {
	if len(t.Data) == 0 {
		return seqplot.Panel{}, false
	}
	from, until := t.Data[0].At, t.Data[len(t.Data)-1].At
	for i := 1; i < len(t.Data); i++ {
		if t.Data[i].At-t.Data[i-1].At >= 10*time.Millisecond {
			until = t.Data[i-1].At
			break
		}
	}
	if until-from < time.Millisecond/10 || until-from > t.Duration()/3 {
		return seqplot.Panel{}, false
	}
	return seqplot.Panel{
		Title: fmt.Sprintf("the same, magnified: the first %s of sending. A red bar below the top of the stair is a segment sent again", ms(until-from)),
		Trace: t,
		From:  from - (until-from)/50,
		Until: until + (until-from)/50,
	}, true
}

// timerRetransmissions counts the segments sent again after the sender
// had sent nothing for at least 10 ms: a timer's, not a fast
// retransmit, which follows the duplicate ACKs within microseconds here.
func timerRetransmissions(t *capture.Trace) int {
	n := 0
	for i := 1; i < len(t.Data); i++ {
		if t.Data[i].Retransmitted && t.Data[i].At-t.Data[i-1].At >= 10*time.Millisecond {
			n++
		}
	}
	return n
}

// readsInSegments says whether the reads, in order, are each made of
// whole consecutive segments (sizes in sending order), and how many are
// exactly one segment.
func readsInSegments(reads []int32, segments []int) (whole bool, single int) {
	i := 0
	for _, r := range reads {
		n, sum := 0, 0
		for sum < int(r) && i < len(segments) {
			sum += segments[i]
			i++
			n++
		}
		if sum != int(r) {
			return false, single
		}
		if n == 1 {
			single++
		}
	}
	return i == len(segments), single
}
