package stream

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/netlab"
)

func loopbackPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestReadTCPStatsOnLoopback(t *testing.T) {
	c, s := loopbackPair(t)
	if _, err := c.Write(bytes.Repeat([]byte("x"), 100_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	st, err := ReadTCPStats(s)
	if err != nil {
		t.Fatal(err)
	}
	if st.RcvMSS < 16<<10 || st.SndMSS < 16<<10 || st.RTO < minRTO {
		t.Errorf("loopback stats %+v: want segments of tens of kB and an RTO of 200 ms or more", st)
	}
	if st.Retransmits != 0 || st.OutOfOrderPackets != 0 || st.OutOfOrderQueued {
		t.Errorf("loopback lost something: %+v", st)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if _, err := ReadTCPStats(p1); err != ErrNoTCPStats {
		t.Errorf("ReadTCPStats of a pipe: %v", err)
	}
}

func TestEndWaitOnACleanLinkIsTheGap(t *testing.T) {
	const gap = 50 * time.Millisecond
	_, s := loopbackPair(t)
	if w := EndWait(s, 3, 20*time.Millisecond, gap); w != 30*time.Millisecond {
		t.Errorf("EndWait 20 ms into a 50 ms gap = %v, want the 30 ms left", w)
	}
	if w := EndWait(s, 3, gap, gap); w != 0 {
		t.Errorf("EndWait after the gap on a clean loopback = %v, want 0", w)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if w := EndWait(p1, 3, gap, gap); w != 0 {
		t.Errorf("EndWait on a pipe after the gap = %v, want 0 (the gap alone)", w)
	}
}

func TestEndWaitWhileDataWaitsBehindAGap(t *testing.T) {
	l := netlab.ForTest(t)
	ln, err := l.B.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := l.A.Dial(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seg := bytes.Repeat([]byte("x"), 1000)
	if _, err := c.Write(seg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, len(seg))); err != nil {
		t.Fatal(err)
	}
	// The first segment is lost; the second arrives ahead of it, and the
	// receiver's acknowledgements (with the SACK that would trigger a
	// fast retransmission) are lost too, so the gap stays open until the
	// sender's retransmission timeout.
	if err := l.Partition(true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(seg); err != nil {
		t.Fatal(err)
	}
	if err := l.Partition(false); err != nil {
		t.Fatal(err)
	}
	if err := l.B.SetLoss(0.999999); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(seg); err != nil {
		t.Fatal(err)
	}
	var st TCPStats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if st, err = ReadTCPStats(s); err != nil {
			t.Fatal(err)
		}
		if st.OutOfOrderQueued {
			break
		}
		time.Sleep(time.Millisecond) // polling the kernel's queue: there is no event for it
	}
	if !st.OutOfOrderQueued || st.OutOfOrderPackets == 0 {
		t.Fatalf("no out-of-order data seen: %+v", st)
	}
	if w := EndWait(s, 1000, time.Second, 50*time.Millisecond); w == 0 {
		t.Error("EndWait took the quiet as the end while data waited behind a gap")
	}
	if err := l.B.SetLoss(0); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(s, make([]byte, 2*len(seg))); err != nil {
		t.Fatalf("the gap was never filled: %v", err)
	}
}

func TestEndWaitOnALossyLinkWaitsForRetransmissions(t *testing.T) {
	st := TCPStats{RTT: 50 * time.Microsecond, RTO: 204 * time.Millisecond, SndMSS: 1448, RcvMSS: 1448, OutOfOrderPackets: 3}
	if s := settleTime(st); s < 3*time.Second || s > maxSettle {
		t.Errorf("settle time at a 204 ms RTO = %v, want 15 RTO", s)
	}
	slow := st
	slow.RcvRTT = 2 * time.Second
	if s := settleTime(slow); s != maxSettle {
		t.Errorf("settle time on a slow link = %v, want the %v bound", s, maxSettle)
	}
}
