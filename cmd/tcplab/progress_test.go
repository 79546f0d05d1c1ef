package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
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

// A slow sender of 100,000-byte blocks toward a known end (3 MB): the bar
// appears after a second and shows the percentage, the bytes of the
// total, the rate and the time left. Before, it showed a spinner, the
// bytes and the rate, and never the end.
func TestProgressBarKnowsTheEnd(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	t.Setenv("TERM", "xterm")
	tty, out, sofar := openTerminal(t)
	pty.Setsize(tty, &pty.Winsize{Rows: 24, Cols: 100})
	var received atomic.Int64
	stopFeed := make(chan struct{})
	fed := feed(&received, 100_000, 100*time.Millisecond, stopFeed)
	start := time.Now()
	stop := startProgress(tty, &received, 3_000_000)
	frame := regexp.MustCompile(`receiving +\d+% \[=* *\] [0-9.]+ [kM]?B of 3\.0 MB, [0-9.]+ [kM]B/s, \d+s left`)
	testkit.WaitWritten(10*time.Second, nil, frame.MatchString, sofar)
	shown := time.Since(start)
	stop()
	close(stopFeed)
	<-fed
	got := out()
	if !frame.MatchString(got) {
		t.Fatalf("no frame with percentage, bar, bytes of the total, rate and time left in %q", got)
	}
	if shown < progressDelay {
		t.Fatalf("shown after %s, before the transfer had lasted %s", shown, progressDelay)
	}
	if strings.Contains(got, "\n") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Fatalf("not one line, cleared at the end: %q", got)
	}
}

// Without a known size, the bar shows the bytes, the rate and the time
// since the first byte.
func TestProgressBarWithoutAnEnd(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	tty, out, sofar := openTerminal(t)
	pty.Setsize(tty, &pty.Winsize{Rows: 24, Cols: 80})
	var received atomic.Int64
	received.Store(1 << 20)
	stop := runProgress(tty, &received, 0, false, 0, 10*time.Millisecond, terminalWidth(tty))
	waitShown(t, sofar, "receiving")
	received.Store(2 << 20)
	waitShown(t, sofar, "2.1 MB")
	stop()
	if got := out(); !regexp.MustCompile(`receiving 2\.1 MB, [0-9.]+ [kMG]?B/s, \d+s`).MatchString(got) {
		t.Fatalf("no bytes, rate and elapsed time in %q", got)
	}
}

// On a terminal narrower than a frame, each redraw left a line behind (the
// frame wrapped, and "\r" went back only to the start of its last row).
// Every frame now fits the width less one column, in a short form below
// 40 columns, and the bar never writes a newline.
func TestProgressBarFitsNarrowTerminals(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	for _, cols := range []uint16{10, 25, 39, 45, 70} {
		tty, out, sofar := openTerminal(t)
		pty.Setsize(tty, &pty.Winsize{Rows: 24, Cols: cols})
		var received atomic.Int64
		received.Store(1)
		stop := runProgress(tty, &received, 9_000_000_000, true, 0, 5*time.Millisecond, terminalWidth(tty))
		for _, n := range []int64{1_000_000, 4_500_000_000} {
			received.Store(n)
			pct := fmt.Sprintf("%d%%", n*100/9_000_000_000)
			waitShown(t, sofar, pct)
		}
		stop()
		got := out()
		if strings.Contains(got, "\n") {
			t.Errorf("%d columns: a newline in %q", cols, got)
		}
		for _, frame := range strings.Split(got, "\r") {
			frame = strings.TrimSuffix(frame, "\x1b[K")
			if w := visibleWidth(frame); w > int(cols)-1 {
				t.Errorf("%d columns: a frame of %d: %q", cols, w, frame)
			}
		}
		if cols < 40 && strings.Contains(got, "[=") {
			t.Errorf("%d columns: not the short form: %q", cols, got)
		}
	}
}

// The property behind it, for any size, rate and width: a frame fits in
// width-1 columns, has no newline, and says the percentage when the size
// is known and there is room for it.
func TestProgressLineFitsAnyWidth(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 1))
	for i := range 20000 {
		p := progress{received: r.Int64N(1 << 40), elapsed: time.Duration(r.Int64N(int64(10 * time.Hour))), rate: float64(r.Int64N(1 << 32))}
		if r.IntN(2) == 0 {
			p.total = p.received + r.Int64N(1<<40)
		}
		width, color := 1+r.IntN(200), r.IntN(2) == 0
		line := p.line(width, color)
		if visibleWidth(line) > width-1 || strings.ContainsAny(line, "\r\n") {
			t.Fatalf("case %d: %+v at width %d: %q", i, p, width, line)
		}
		if p.total > 0 && width >= 6 && !strings.Contains(line, "%") {
			t.Fatalf("case %d: %+v at width %d: no percentage in %q", i, p, width, line)
		}
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
		stop := runProgress(tty, &received, 0, noColor == "", 0, 10*time.Millisecond, func() int { return 80 })
		waitShown(t, sofar, "receiving")
		stop()
		got := out()
		sgr := regexp.MustCompile("\x1b\\[[0-9;]*m").MatchString(got)
		if !strings.Contains(got, "receiving") || sgr != (noColor == "") {
			t.Errorf("NO_COLOR=%q: colour %v in %q", noColor, sgr, got)
		}
	}
}

// waitShown waits until the terminal has shown text.
func waitShown(t *testing.T, sofar *testkit.SafeBuffer, text string) {
	t.Helper()
	if !testkit.WaitWritten(5*time.Second, nil, func(out string) bool { return strings.Contains(out, text) }, sofar) {
		t.Fatalf("%q never shown; shown %q", text, sofar.String())
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

// Through a pipe ("tcplab tmc ... | tee log" on the same terminal), tmc's
// lines reach the terminal too, and each bar frame got a "received N
// bytes" glued on and was never erased. A pipe's far end cannot be known:
// with per-read lines on a pipe there is no bar. With --quiet, nothing
// goes down the pipe during the transfer: the bar is there, and gone
// before the summary.
func TestProgressBarOffWhenStdoutIsAPipe(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	t.Setenv("TERM", "xterm")
	slow := func(c net.Conn, p *peer) {
		c.Read(make([]byte, 64))
		// A slow sender, lasting past progressDelay: the pace is the point.
		for range 15 {
			c.Write([]byte("abc"))
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
	}
	for _, quiet := range []bool{false, true} {
		p := startPeer(t, slow)
		tty, out, _ := openTerminal(t)
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		piped := make(chan string)
		go func() { b, _ := io.ReadAll(pr); piped <- string(b) }()
		args := []string{"tmc", "--copies", "15", "127.0.0.1", p.port, "abc"}
		if quiet {
			args = append(args[:1], append([]string{"--quiet"}, args[1:]...)...)
		}
		code := run(context.Background(), args, strings.NewReader(""), pw, tty)
		pw.Close()
		lines, got := <-piped, out()
		pr.Close()
		if code != 0 || !strings.Contains(lines, "summary: 45 bytes") {
			t.Fatalf("quiet %v: exit %d: %q", quiet, code, lines)
		}
		if bar := strings.Contains(got, "receiving"); bar != quiet {
			t.Fatalf("quiet %v: bar %v on the terminal: %q", quiet, bar, got)
		}
	}
}
