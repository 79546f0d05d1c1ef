package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
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
	// 100000 bytes with no period: copies of a prefix cannot pass for
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
			"tcplab tmc: answer is not whole copies of the 100000-byte string: byte 43440 differs\n"},
		{"the last copy cut short", func(m []byte) []byte { return bytes.Repeat(m, 3)[:243_440] },
			"tcplab tmc: received 243440 bytes, not a whole number of copies of the 100000-byte string\n"},
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
		if code, _, errOut := runCmd(t, "", "tmc", "--quiet", "--copies", "3", host, port, msg); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

// Whole copies in the wrong number are a wrong answer too. Before tmc
// knew the count, both runs below exited 0: a periodic string cut at a
// multiple of its period by a bad server, and tcplab's own tms ending
// the string "ab\nab\n" at its first newline (30,000 bytes, which are
// 5000 whole copies of the 6-byte string).
func TestTMCChecksTheNumberOfCopies(t *testing.T) {
	t.Run("a periodic string cut by the server", func(t *testing.T) {
		host, port := badTMS(t, func(m []byte) []byte { return bytes.Repeat(m[:len(m)/2], 10_000) })
		code, _, errOut := runCmd(t, "", "tmc", "--quiet", host, port, strings.Repeat("x", 1000))
		want := "tcplab tmc: received 5000000 bytes, 5000 copies of the 1000-byte string, not the 10000 expected\n"
		if code != 1 || errOut != want {
			t.Fatalf("exit %d, stderr %q; want 1, %q", code, errOut, want)
		}
	})
	t.Run("tms would cut at a newline: a usage error", func(t *testing.T) {
		// tms ends the string at its first newline (kept): it answered
		// "ab\nab\n" with 30000 bytes, 5000 whole copies of it, and tmc
		// failed only at the end. Now tmc refuses it before connecting.
		code, _, errOut := runCmd(t, "", "tmc", "--quiet", "127.0.0.1", "1", "ab\nab\n")
		want := "tcplab tmc: STRING has a newline before its end, where tms would end it: send \"ab\\n\" alone, or no newline (see 'tcplab tmc --help')\n"
		if code != exitUsage || errOut != want {
			t.Fatalf("exit %d, stderr %q; want 2, %q", code, errOut, want)
		}
		srv := testkit.Start(t, nil, testkit.Binary(t), "tms", "--no-wait", "--copies", "3", "0")
		port := listeningPort(t, srv)
		code, out, errOut := runCmd(t, "", "tmc", "--copies", "3", "127.0.0.1", port, "ab\n")
		if code != 0 || !strings.Contains(out, "summary: 9 bytes") {
			t.Fatalf("a newline at the end (kept by tms): exit %d, %q %q", code, out, errOut)
		}
	})
	t.Run("--copies says how many", func(t *testing.T) {
		host, port := badTMS(t, func(m []byte) []byte { return bytes.Repeat(m, 7) })
		if code, _, errOut := runCmd(t, "", "tmc", "--quiet", "--copies", "7", host, port, "abc"); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("--copies 0 takes any whole number", func(t *testing.T) {
		host, port := badTMS(t, func(m []byte) []byte { return bytes.Repeat(m, 3) })
		if code, _, errOut := runCmd(t, "", "tmc", "--quiet", "--copies", "0", host, port, "abc"); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

// holdingTMS answers the client's message with answer and then holds the
// connection open, sending nothing more: a client that waited for the end
// before judging would wait for ever (here: --timeout 1h).
func holdingTMS(t *testing.T, answer func(msg []byte) []byte) string {
	return startPeer(t, func(c net.Conn, p *peer) {
		msg, _ := io.ReadAll(io.LimitReader(c, 1<<20))
		c.Write(answer(msg))
	}).port
}

// tmc stops at the first sign that the answer is wrong, naming the likely
// cause, rather than reading to the end (300 MB from a tms with --copies
// 100000000 before it said "not the 10,000 expected").
func TestTMCStopsAsSoonAsTheAnswerIsWrong(t *testing.T) {
	cases := []struct {
		name   string
		answer func(msg []byte) []byte
		want   string
	}{
		{"more copies than expected", func(m []byte) []byte { return bytes.Repeat(m, 10_001) },
			`tcplab tmc: received more than the 10000 copies of "abc" expected (30000 bytes): the server sends more copies: give tmc its count with --copies N (0: any number)` + "\n"},
		{"a byte that differs", func(m []byte) []byte { return []byte("abcabd") },
			`tcplab tmc: answer is not whole copies of "abc": byte 5 differs` + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port := holdingTMS(t, tc.answer)
			done := make(chan struct{})
			var code int
			var errOut string
			go func() {
				defer close(done)
				code, _, errOut = runCmd(t, "", "tmc", "--quiet", "--timeout", "1h", "127.0.0.1", port, "abc")
			}()
			select {
			case <-done:
			case <-time.After(eventWait):
				t.Fatal("tmc is still reading an answer that cannot be right")
			}
			if code != 1 || errOut != tc.want {
				t.Fatalf("exit %d, stderr %q; want 1, %q", code, errOut, tc.want)
			}
		})
	}
}
