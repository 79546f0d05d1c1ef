package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// progressDelay is how long a transfer must last before its progress bar
// appears: a transfer shorter than that needs none.
const progressDelay = time.Second

// startProgress shows tmc's progress on w when w is a terminal (never on a
// pipe or a file, where it would be noise in a log): the bytes received,
// the rate, and, when the size is known (total > 0: copies × length),
// the percentage, a bar and the time left; otherwise the time since the
// first byte. It appears once a second has passed since the first byte,
// always on one line that fits the terminal (a short form below 40
// columns), and the returned function stops it and clears that line.
// Colour is used only when NO_COLOR is unset (https://no-color.org).
func startProgress(w io.Writer, received *atomic.Int64, total int64) (stop func()) {
	if !isTerminal(w) || os.Getenv("TERM") == "dumb" {
		return func() {}
	}
	return runProgress(w, received, total, os.Getenv("NO_COLOR") == "", progressDelay, 200*time.Millisecond, terminalWidth(w))
}

// terminalWidth returns a function that reads w's width in columns at each
// call (the window may be resized during a transfer), 80 if it cannot.
func terminalWidth(w io.Writer) func() int {
	return func() int {
		if f := fileOf(w); f != nil {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
		}
		return 80
	}
}

// runProgress draws the progress every interval once delay has passed
// since the first byte. Each frame is "\r", the line, and "clear to the end
// of the line": one line, redrawn in place, never wrapped (it is cut to
// the width less one column, so the cursor never moves to the next row),
// and so never a trail of lines.
func runProgress(w io.Writer, received *atomic.Int64, total int64, color bool, delay, every time.Duration, width func() int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var first time.Time
		var rate rateMeter
		drawn := false
		for {
			select {
			case <-done:
				if drawn {
					io.WriteString(w, "\r\x1b[K")
				}
				return
			case <-tick.C:
			}
			n := received.Load()
			if n == 0 {
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			rate.add(now, n)
			if now.Sub(first) < delay {
				continue
			}
			p := progress{received: n, total: total, elapsed: now.Sub(first), rate: rate.perSecond()}
			io.WriteString(w, "\r"+p.line(width(), color)+"\x1b[K")
			drawn = true
		}
	}()
	return func() { close(done); <-finished }
}

// rateMeter is the rate over the last few seconds, so the rate and the
// time left follow a transfer that speeds up or slows down.
type rateMeter struct {
	at    []time.Time
	bytes []int64
}

const rateWindow = 3 * time.Second

func (m *rateMeter) add(t time.Time, n int64) {
	m.at, m.bytes = append(m.at, t), append(m.bytes, n)
	for len(m.at) > 2 && t.Sub(m.at[1]) >= rateWindow {
		m.at, m.bytes = m.at[1:], m.bytes[1:]
	}
}

func (m *rateMeter) perSecond() float64 {
	if len(m.at) < 2 {
		return 0
	}
	d := m.at[len(m.at)-1].Sub(m.at[0]).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(m.bytes[len(m.bytes)-1]-m.bytes[0]) / d
}

// progress is one frame of the bar.
type progress struct {
	received, total int64 // total 0: unknown
	elapsed         time.Duration
	rate            float64 // bytes per second, 0: not known yet
}

// line renders the frame in at most width-1 columns: the long form with
// a bar where it fits, a shorter one where not, and below 40 columns the
// short form "42% 5.1 MB/s 3s".
func (p progress) line(width int, color bool) string {
	room := width - 1
	label := "receiving"
	if color {
		label = "\x1b[36mreceiving\x1b[0m"
	}
	rate := "-"
	if p.rate > 0 {
		rate = rateText(p.rate)
	}
	var forms []string
	if p.total > 0 {
		frac := min(float64(p.received)/float64(p.total), 1)
		pct := fmt.Sprintf("%3.0f%%", math.Floor(frac*100))
		left := "-"
		if p.rate > 0 {
			left = shortDuration(time.Duration(float64(p.total-p.received) / p.rate * float64(time.Second)))
		}
		stats := fmt.Sprintf("%s of %s, %s, %s left", sizeText(p.received), sizeText(p.total), rate, left)
		if barWidth := room - len("receiving ") - len(pct) - 4 - len(stats); barWidth >= 10 {
			barWidth = min(barWidth, 40)
			filled := int(frac * float64(barWidth))
			bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)
			forms = append(forms, fmt.Sprintf("%s %s [%s] %s", label, pct, bar, stats))
		}
		forms = append(forms,
			fmt.Sprintf("%s %s %s", label, pct, stats),
			fmt.Sprintf("%s %s, %s left", pct, rate, left),
			fmt.Sprintf("%s %s", pct, left),
			strings.TrimSpace(pct))
	} else {
		elapsed := shortDuration(p.elapsed)
		forms = append(forms,
			fmt.Sprintf("%s %s, %s, %s", label, sizeText(p.received), rate, elapsed),
			fmt.Sprintf("%s %s", sizeText(p.received), rate),
			sizeText(p.received))
	}
	if room < 40 && len(forms) > 1 {
		forms = forms[1:] // the short forms on a narrow terminal
	}
	for _, f := range forms {
		if visibleWidth(f) <= room {
			return f
		}
	}
	return cut(forms[len(forms)-1], room)
}

// visibleWidth is the columns s takes, colour codes aside.
func visibleWidth(s string) int {
	n, inEscape := 0, false
	for _, r := range s {
		switch {
		case r == '\x1b':
			inEscape = true
		case inEscape:
			inEscape = r != 'm'
		default:
			n++
		}
	}
	return n
}

// cut keeps the first n columns of a plain string.
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// sizeText writes bytes with a decimal unit, as rateText does.
func sizeText(n int64) string {
	f := float64(n)
	switch {
	case f >= 1e9:
		return fmt.Sprintf("%.2f GB", f/1e9)
	case f >= 1e6:
		return fmt.Sprintf("%.1f MB", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.1f kB", f/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// shortDuration writes d to the second, or to the minute past an hour.
func shortDuration(d time.Duration) string {
	if d >= time.Hour {
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Second).String()
}
