package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
)

// badTMS serves one client: it reads the client's message until the
// client half-closes, then answers with what answer makes of it, and
// closes. It returns the address to dial.
func badTMS(t *testing.T, answer func(msg []byte) []byte) (host, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		msg, _ := io.ReadAll(io.LimitReader(c, 1<<20))
		c.Write(answer(msg))
	}()
	host, port, _ = net.SplitHostPort(ln.Addr().String())
	return host, port
}

// tmc checks the answer against what it sent: a server that cut the
// message (as tms did under loss) or lost bytes makes it exit 1 with one
// line, never 0. Before the check, both runs below exited 0.
func TestTMCRefusesAnAnswerThatIsNotWholeCopies(t *testing.T) {
	// 100,000 bytes with no period: copies of a prefix cannot pass for
	// copies of the whole.
	r := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for range 100_000 {
		sb.WriteByte('a' + byte(r.IntN(26)))
	}
	msg := sb.String()
	cases := []struct {
		name   string
		answer func(msg []byte) []byte
		want   string
	}{
		{"copies of a cut message", func(m []byte) []byte { return bytes.Repeat(m[:43_440], 5) },
			"tcplab tmc: answer is not whole copies of the 100,000-byte string: byte 43,440 differs\n"},
		{"the last copy cut short", func(m []byte) []byte { return bytes.Repeat(m, 3)[:243_440] },
			"tcplab tmc: received 243,440 bytes, not a whole number of copies of the 100,000-byte string\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			host, port := badTMS(t, tc.answer)
			code, _, errOut := runCmd(t, "", "tmc", "--quiet", host, port, msg)
			if code != 1 || errOut != tc.want {
				t.Fatalf("exit %d, stderr %q; want 1, %q", code, errOut, tc.want)
			}
		})
	}
	t.Run("whole copies", func(t *testing.T) {
		host, port := badTMS(t, func(m []byte) []byte { return bytes.Repeat(m, 3) })
		if code, _, errOut := runCmd(t, "", "tmc", "--quiet", host, port, msg); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}
