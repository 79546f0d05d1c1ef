package sharedstring_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tcplab/tcplab/sharedstring"
)

// silentServer accepts connections and reads what comes without ever
// answering (or, framed, answers the hello only): a server whose reply is
// late. It returns the port and a channel that receives every byte read.
func silentServer(t *testing.T, framed bool) (string, <-chan byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan byte, 1024)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if framed {
			hello := make([]byte, sharedstring.HelloLen)
			if _, err := io.ReadFull(br, hello); err != nil {
				return
			}
			c.Write([]byte("h\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			b, err := br.ReadByte()
			if err != nil {
				return
			}
			got <- b
		}
	}()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), got
}

// A client that gives up waiting says that its letter may still arrive:
// the server did receive it (here it did), and a real strsvr may append
// it after the client has left. Before, the message was only "no reply
// within 30s", which reads as "not added".
func TestNoReplySaysTheLetterMayStillArrive(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    sharedstring.Mode
		letters string
		want    string
	}{
		{"classic", sharedstring.Classic, "a", "no reply within 200ms (the letter may still have been added)"},
		{"framed", sharedstring.Framed, "a", "no reply within 200ms (the letter may still have been added)"},
		{"framed, a line", sharedstring.Framed, "abc", "no reply within 200ms (the letters may still have been added)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, got := silentServer(t, tc.mode == sharedstring.Framed)
			c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Mode: tc.mode, ReplyTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Send([]byte(tc.letters))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Send to a silent server: %v, want %q", err, tc.want)
			}
			if b := <-got; b != tc.letters[0] {
				t.Fatalf("server read %q", b)
			}
		})
	}
}
