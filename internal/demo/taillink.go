package demo

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/capture"
	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/seqplot"
)

// tailLink is the tail lesson's Nagle rounds on the lab link, captured on
// the client's side.
type tailLink struct {
	// NagleMedian and NoDelayMedian are the rounds' medians on the link.
	NagleMedian, NoDelayMedian time.Duration
	// Nagle and NoDelay are the client's data, as captured.
	Nagle, NoDelay *capture.Trace
	// Unacked counts, per connection, the segments the client sent while
	// earlier data was still unacknowledged: Nagle's algorithm forbids it
	// for small segments, TCP_NODELAY allows it.
	NagleUnacked, NoDelayUnacked int
	// Held is the longest wait, with Nagle on, between a byte and the
	// next one, which went out when an ACK came.
	Held seqplot.Span
	wire *wireSeen
	err  error
}

// tailOnLink runs the Nagle rounds again on a lab link, captures them and
// narrates what the capture shows. Without a link it says so in one line.
// An error is left in obs.link.err.
func tailOnLink(ctx context.Context, p *page, obs *tailObservations, opts Options) {
	if err := netlab.Check(); err != nil {
		p.line("Skipped:  ", "the same on a real link, captured, needs two network namespaces; %s.", strings.TrimPrefix(err.Error(), "netlab: "))
		return
	}
	tl := &tailLink{}
	obs.link = tl
	tl.err = tl.run(ctx, p, opts)
}

func (tl *tailLink) run(ctx context.Context, p *page, opts Options) error {
	l, err := netlab.New()
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := startCapture(l.A)
	if err != nil {
		return err
	}
	defer c.Stop()
	var conns []capture.Conn
	for _, noDelay := range []bool{false, true} {
		conn, median, err := nagleOverLink(ctx, l, noDelay)
		if err != nil {
			return err
		}
		conns = append(conns, conn)
		if noDelay {
			tl.NoDelayMedian = median
		} else {
			tl.NagleMedian = median
		}
	}
	if tl.wire, err = finishCapture(ctx, c, l.A, conns...); err != nil {
		return err
	}
	tl.Nagle = capture.TraceOf(tl.wire.Packets, conns[0].Client, conns[0].Server)
	tl.NoDelay = capture.TraceOf(tl.wire.Packets, conns[1].Client, conns[1].Server)
	tl.wire.Trace = tl.Nagle
	tl.NagleUnacked, tl.NoDelayUnacked = sentUnacked(tl.Nagle), sentUnacked(tl.NoDelay)
	tl.Held = longestHold(tl.Nagle)

	p.do("the same rounds over the lab link, capturing on the client's veth.")
	p.saw("median round on the link: %s with Nagle on, %s with TCP_NODELAY.", ms(tl.NagleMedian), ms(tl.NoDelayMedian))
	p.saw("on the wire, Nagle on: %s of 1 byte; %d sent while an earlier byte was unacknowledged;",
		count(len(tl.Nagle.Data), "segment"), tl.NagleUnacked)
	if tl.Held.To > 0 {
		p.saw("  the longest hold: byte %d waited %s for the ACK of byte %d, then left at once.",
			tl.Held.Seq, ms(tl.Held.To-tl.Held.From), tl.Held.Seq-1)
	}
	p.saw("TCP_NODELAY: %s, %d of them sent while the byte before was unacknowledged: nothing waits.",
		count(len(tl.NoDelay.Data), "segment"), tl.NoDelayUnacked)
	until := max(tl.Nagle.Duration(), tl.NoDelay.Duration())
	held := tl.Held
	if held.To > 0 {
		held.Label = fmt.Sprintf("byte %d waits %s: Nagle holds it until byte %d is ACKed", held.Seq, ms(held.To-held.From), held.Seq-1)
	}
	return writeWire(p, tl.wire, opts, "tail", seqplot.Panel{
		Title: fmt.Sprintf("tail, Nagle on: %d rounds of write 1 byte, write 1 byte, read the answer: %s", nagleRounds, ms(tl.Nagle.Duration())),
		Trace: tl.Nagle, Until: until, Spans: spansOf(held),
	}, seqplot.Panel{
		Title: fmt.Sprintf("the same with TCP_NODELAY (Go's default), on the same time scale: %s", ms(tl.NoDelay.Duration())),
		Trace: tl.NoDelay, Until: until,
	})
}

func spansOf(s seqplot.Span) []seqplot.Span {
	if s.To == 0 {
		return nil
	}
	return []seqplot.Span{s}
}

// nagleOverLink runs the Nagle rounds from side A to a server on side B.
func nagleOverLink(ctx context.Context, l *netlab.Link, noDelay bool) (capture.Conn, time.Duration, error) {
	ln, err := l.B.Listen(0)
	if err != nil {
		return capture.Conn{}, 0, err
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		ln.SetDeadline(time.Now().Add(lessonTimeout))
		c, _ := ln.AcceptTCP()
		accepted <- c
	}()
	client, err := l.A.Dial(ctx, ln.Addr().String())
	if err != nil {
		ln.Close()
		if c := <-accepted; c != nil {
			c.Close()
		}
		return capture.Conn{}, 0, err
	}
	defer client.Close()
	server := <-accepted
	if server == nil {
		return capture.Conn{}, 0, fmt.Errorf("accept on the link: nobody came")
	}
	defer server.Close()
	median, err := nagleRoundsOn(ctx, client, server, noDelay)
	return connOf(client), median, err
}

// sentUnacked counts the data segments sent while some earlier data was
// not yet acknowledged, as the capture saw it.
func sentUnacked(t *capture.Trace) int {
	n, j := 0, 0
	var acked int64
	for _, d := range t.Data {
		for j < len(t.Acks) && t.Acks[j].At <= d.At {
			acked = max(acked, t.Acks[j].Ack)
			j++
		}
		if !d.Retransmitted && acked < d.Seq {
			n++
		}
	}
	return n
}

// longestHold is the longest time between one data segment and the next
// when an ACK came between them: the next waited for that ACK.
func longestHold(t *capture.Trace) seqplot.Span {
	var best seqplot.Span
	for i := 1; i < len(t.Data); i++ {
		prev, d := t.Data[i-1], t.Data[i]
		ackedBetween := false
		for _, a := range t.Acks {
			if a.At > prev.At && a.At <= d.At && a.Ack >= prev.End() {
				ackedBetween = true
			}
		}
		if ackedBetween && d.At-prev.At > best.To-best.From {
			best = seqplot.Span{From: prev.At, To: d.At, Seq: d.Seq}
		}
	}
	return best
}
