package sharedstring

import (
	"io"
	"net"
	"testing"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// The wait for more of a classic reply is long only for a reply whose
// bytes fill whole segments of the server's MSS. On loopback (MSS 65,483)
// a 2,000-byte reply is one short segment and ends at once. Before this
// was checked the rule used the kernel's estimate of the peer's MSS, the
// largest segment seen so far, so every reply longer than the ones before
// it looked full and waited 3 s (3 letters with a 2,000-byte v: 9.2 s
// through the binary, 0.11 s after).
func TestQuietForFullSegmentsOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	c := &Client{conn: cc, opts: Options{Quiet: DefaultQuiet, ReplyTimeout: DefaultReplyTimeout}}
	st, err := tcpsock.ReadStats(cc)
	if err != nil {
		t.Skip(err)
	}
	for _, n := range []int{1, 2000, 2001, 2002, 40_000} {
		if _, err := sc.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(cc, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		p := replyPace{bytes: n}
		if q, full := c.quietFor(&p); q >= fullSegmentWait || full {
			t.Errorf("a %d-byte reply on loopback (MSS %d) waits %v (full: %v), as if it filled whole segments", n, st.SndMSS, q, full)
		}
	}
	if st, err = tcpsock.ReadStats(cc); err != nil {
		t.Fatal(err)
	}
	p := replyPace{bytes: 2 * st.SndMSS}
	if q, full := c.quietFor(&p); q < fullSegmentWait || !full {
		t.Errorf("a reply of two full segments (%d bytes) waits only %v (full: %v)", p.bytes, q, full)
	}
}
