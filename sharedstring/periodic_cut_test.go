package sharedstring_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
)

// Breaker finding (issue 18): a stall exactly at a segment boundary of a
// classic reply, longer than the full-segment wait (3 s), when v repeats
// one letter (anyone's typing of "aaaa..."; any v periodic in the length
// of the cut tail does the same). The client takes the first K = MSS bytes
// as whole after fullSegmentWait and sends its next letter at once; the
// rest of the cut reply then arrives followed by the next reply. Since the
// rest and the next reply together begin with the cut prefix and end with
// the letter, the content check that catches other cut replies
// (TestClassicReplyShownCutIsReported) cannot tell them from one longer
// reply (another client could have typed the extra letters), and Send
// returns a v longer than the server's, with no error; Leave is then clean
// too. The peer here writes the reply in two parts, the second only after
// the next letter arrived: exactly what the client sees when the link
// stalls after the first K bytes for longer than the wait.
//
// Fixed: a reply taken as whole only because the full-segment wait ran
// out is doubtful, and the reply after it fails honestly ("may have been
// longer than shown") when it could be the rest and the next reply
// (mayHoldRest). Before the fix: a v of 32,789 bytes, exit 0.
func TestClassicPeriodicReplyCutAtFullSegmentIsReported(t *testing.T) {
	mss := make(chan int, 1)
	addr := testkit.ServeEach(t, func(c net.Conn) {
		st, err := tcpsock.ReadStats(c)
		if err != nil || st.SndMSS <= 0 {
			mss <- 0
			return
		}
		k := st.SndMSS
		mss <- k
		letter := make([]byte, 1)
		if _, err := io.ReadFull(c, letter); err != nil {
			return
		}
		v1 := bytes.Repeat([]byte("a"), k+10) // the server's v after 'a'
		c.Write(v1[:k])                       // a stall after one full segment
		if _, err := io.ReadFull(c, letter); err != nil {
			return
		}
		c.Write(v1[k:]) // the stall ends: the rest of the first reply
		c.Write(append(v1, 'a'))
		io.Copy(io.Discard, c) // until the client's half-close
	})
	host, port, _ := net.SplitHostPort(addr)
	c, err := sharedstring.Dial(context.Background(), host, port, sharedstring.Options{Mode: sharedstring.Classic})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Send([]byte("a"))
	k := <-mss
	if k == 0 {
		t.Skip("no TCP_INFO here")
	}
	if err != nil || len(v) != k {
		t.Fatalf("first reply: %d bytes, %v; want the first segment (%d bytes) taken as whole", len(v), err, k)
	}
	v, err = c.Send([]byte("a"))
	if err == nil {
		err = c.Leave()
	}
	if err == nil || !strings.Contains(err.Error(), "the server's reply may have been longer than shown") {
		t.Fatalf("got a v of %d bytes (the server's: %d) and err %v; want the reply said to be maybe longer than shown", len(v), k+11, err)
	}
}

// The normal case next to it: v of one repeated letter whose reply fills
// exactly one segment, with no stall. The client waits the full-segment
// wait on that reply (it cannot know the reply is whole), takes it as
// whole, and the next replies, one letter longer each, are exact: a
// reply one letter longer than a doubtful one can hold no rest.
func TestClassicPeriodicReplyAtFullSegmentIsExact(t *testing.T) {
	mss := make(chan int, 1)
	addr := testkit.ServeEach(t, func(c net.Conn) {
		st, err := tcpsock.ReadStats(c)
		if err != nil || st.SndMSS <= 0 {
			mss <- 0
			return
		}
		mss <- st.SndMSS
		v := bytes.Repeat([]byte("a"), st.SndMSS-1)
		letter := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, letter); err != nil {
				return
			}
			v = append(v, letter[0])
			c.Write(v)
		}
	})
	host, port, _ := net.SplitHostPort(addr)
	c, err := sharedstring.Dial(context.Background(), host, port, sharedstring.Options{Mode: sharedstring.Classic})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Send([]byte("a"))
	k := <-mss
	if k == 0 {
		t.Skip("no TCP_INFO here")
	}
	for i := range 3 {
		if i > 0 {
			v, err = c.Send([]byte("a"))
		}
		if want := k + i; err != nil || len(v) != want || bytes.Count(v, []byte("a")) != want {
			t.Fatalf("reply %d: %d bytes, %v; want %d times 'a'", i+1, len(v), err, want)
		}
	}
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
}
