package sharedstring_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
)

// A classic reply that a stall cut (here: a peer that sends its reply in
// two parts, the second only when the test says so, after the client has
// taken the first part as whole) is never left standing: the rest, when
// it comes, makes the client fail with "the server's reply was longer
// than shown", whether it comes before the next letter is sent, with the
// next reply, or before the server's close when the client leaves. Before
// the fix the client printed "aXa" and exited 0 when it left, and in the
// other two cases took the rest as a new reply or said only that the
// stream was out of step.
func TestClassicReplyShownCutIsReported(t *testing.T) {
	for _, when := range []string{"at leaving", "before the next letter", "with the next reply"} {
		t.Run(when, func(t *testing.T) {
			rest := make(chan struct{})
			restSent := make(chan struct{})
			addr := testkit.ServeEach(t, func(c net.Conn) {
				letter := make([]byte, 1)
				if _, err := io.ReadFull(c, letter); err != nil {
					return
				}
				c.Write([]byte("aXa")) // looks whole: it ends with the letter
				<-rest
				c.Write([]byte("Ya")) // the rest: v is "aXaYa"
				close(restSent)
				if _, err := io.ReadFull(c, letter); err == nil {
					c.Write([]byte("aXaYab"))
				}
				io.Copy(io.Discard, c) // until the client's half-close
			})
			host, port, _ := net.SplitHostPort(addr)
			c, err := sharedstring.Dial(context.Background(), host, port, sharedstring.Options{Mode: sharedstring.Classic})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			v, err := c.Send([]byte("a"))
			if err != nil || string(v) != "aXa" {
				t.Fatalf("first reply: %q, %v; want the first part, taken as whole", v, err)
			}
			close(rest)
			switch when {
			case "at leaving":
				err = c.Leave()
			case "before the next letter":
				<-restSent
				// The rest is on its way over loopback: Send sees it
				// pending, or as the start of the next reply.
				_, err = c.Send([]byte("b"))
			case "with the next reply":
				_, err = c.Send([]byte("b"))
			}
			if err == nil || !strings.Contains(err.Error(), "the server's reply was longer than shown") {
				t.Fatalf("got %v, want the reply said to be longer than shown", err)
			}
		})
	}
}
