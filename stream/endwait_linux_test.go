package stream

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
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
	st, err := tcpsock.ReadStats(s)
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
	if _, err := tcpsock.ReadStats(p1); err != tcpsock.ErrNoStats {
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

func TestEndWaitOnALossyLinkWaitsForRetransmissions(t *testing.T) {
	st := tcpsock.Stats{RTT: 50 * time.Microsecond, RTO: 204 * time.Millisecond, SndMSS: 1448, RcvMSS: 1448, OutOfOrderPackets: 3}
	if s := settleTime(st); s < 3*time.Second || s > maxSettle {
		t.Errorf("settle time at a 204 ms RTO = %v, want 15 RTO", s)
	}
	slow := st
	slow.RcvRTT = 2 * time.Second
	if s := settleTime(slow); s != maxSettle {
		t.Errorf("settle time on a slow link = %v, want the %v bound", s, maxSettle)
	}
}

// Bytes that arrive between the read's timeout and the question are read,
// not left behind a message taken as complete.
func TestEndWaitWhileBytesAreReadable(t *testing.T) {
	c, s := loopbackPair(t)
	if _, err := c.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		st, err := tcpsock.ReadStats(s)
		if err != nil {
			t.Fatal(err)
		}
		if st.Readable == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 bytes written, %d readable", st.Readable)
		}
		time.Sleep(time.Millisecond) // polling the kernel's queue: there is no event for it
	}
	if w := EndWait(s, 100, time.Second, 50*time.Millisecond); w == 0 {
		t.Error("EndWait took the quiet as the end with bytes waiting to be read")
	}
}
