package main

import (
	"context"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tcplab/tcplab/internal/testkit"
)

// openTerminal returns the two ends of a pseudo-terminal: tty is what a
// program writes to, and everything written to it is collected in out.
func openTerminal(t *testing.T) (tty *os.File, out func() string, sofar *testkit.SafeBuffer) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	var buf testkit.SafeBuffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&buf, ptmx) // ends with EIO once tty is closed
		close(copied)
	}()
	t.Cleanup(func() {
		tty.Close()
		<-copied
		ptmx.Close()
	})
	return tty, func() string {
		// What was written to tty reaches ptmx at once, but the copy
		// runs on its own: close tty and wait for the copy to end.
		tty.Close()
		<-copied
		return buf.String()
	}, &buf
}

// feed adds step bytes to received every interval until stop is closed,
// as a slow sender of step-byte blocks does.
func feed(received *atomic.Int64, step int64, interval time.Duration, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				received.Add(step)
			}
		}
	}()
	return done
}

// A slow sender of 100,000-byte blocks: the bar appears after a second and
// shows the bytes, the rate and the time, not a spinner alone. Before, it
// never appeared (the library drew a bar of unknown length only when its
// percentage changed), and when it did its first frame was
// "receiving (24 GB/s)".
func TestProgressBarShowsBytesRateAndTime(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	tty, out, sofar := openTerminal(t)
	var received atomic.Int64
	stopFeed := make(chan struct{})
	fed := feed(&received, 100_000, 100*time.Millisecond, stopFeed)
	start := time.Now()
	stop := startProgress(tty, &received)
	frame := regexp.MustCompile(`receiving.*\(([0-9.]+ [kMG]?B), ([0-9.]+ [kMG]?B/s)\) \[\d+s\]`)
	testkit.Poll(10*time.Second, func() bool { return frame.MatchString(sofar.String()) })
	shown := time.Since(start)
	stop()
	close(stopFeed)
	<-fed
	got := out()
	if !frame.MatchString(got) {
		t.Fatalf("no frame with bytes, rate and elapsed time in %q", got)
	}
	if shown < progressDelay {
		t.Fatalf("shown after %s, before the transfer had lasted %s", shown, progressDelay)
	}
	if strings.Contains(got, "GB/s") {
		t.Fatalf("a 1 MB/s transfer shown at GB/s: %q", got)
	}
}

// NO_COLOR (https://no-color.org) turns the colour off; the bar is there.
func TestProgressBarRespectsNoColor(t *testing.T) {
	for _, noColor := range []string{"", "1"} {
		t.Setenv("NO_COLOR", noColor)
		t.Setenv("TERM", "xterm")
		tty, out, sofar := openTerminal(t)
		var received atomic.Int64
		received.Store(1 << 20)
		stop := runProgress(tty, &received, noColor == "", 0, 10*time.Millisecond)
		waitUntil(t, func() bool { return strings.Contains(sofar.String(), "receiving") })
		stop()
		got := out()
		sgr := regexp.MustCompile("\x1b\\[[0-9;]*m").MatchString(got)
		if !strings.Contains(got, "receiving") || sgr != (noColor == "") {
			t.Errorf("NO_COLOR=%q: colour %v in %q", noColor, sgr, got)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	if !testkit.Poll(5*time.Second, cond) {
		t.Fatal("condition never met")
	}
}

// When tmc's per-read lines go to the terminal, they are the progress: a
// bar drawn on the same screen between them glued itself to each line,
// "⠋ receiving (21 B, 11 B/s) [1s] received 1 bytes". The bar is for
// --quiet, --json, or a standard output that is not the terminal.
func TestProgressBarStaysOffTMCsOwnLines(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	t.Setenv("TERM", "xterm")
	p := startPeer(t, func(c net.Conn, p *peer) {
		c.Read(make([]byte, 64))
		// A slow sender, lasting past progressDelay: the pace is the point.
		for range 15 {
			c.Write([]byte("abc"))
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
	})
	tty, out, _ := openTerminal(t)
	code := run(context.Background(), []string{"tmc", "--copies", "15", "127.0.0.1", p.port, "abc"}, strings.NewReader(""), tty, tty)
	got := out()
	if code != 0 || !strings.Contains(got, "summary: 45 bytes") {
		t.Fatalf("exit %d: %q", code, got)
	}
	if strings.Contains(got, "receiving") {
		t.Fatalf("a bar among tmc's lines: %q", got)
	}
}
