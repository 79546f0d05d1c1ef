package main

import (
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressDelay is how long a transfer must last before its progress bar
// appears: a transfer shorter than that needs none.
const progressDelay = time.Second

// startProgress shows tmc's progress on w when w is a terminal (never on a
// pipe or a file, where it would be noise in a log): bytes received, the
// rate and the time since the first byte, whatever size the reads are. It
// appears once a second has passed since the first byte, and the returned
// function stops and clears it.
//
// The bar is made at the first byte, so its rate and clock start there
// (made later, its first frame divided a second's bytes by nothing:
// "receiving (24 GB/s)"), and writes to w only from progressDelay on.
// Colour is used only when NO_COLOR is unset (https://no-color.org).
func startProgress(w io.Writer, received *atomic.Int64) (stop func()) {
	if !isTerminal(w) || os.Getenv("TERM") == "dumb" {
		return func() {}
	}
	return runProgress(w, received, os.Getenv("NO_COLOR") == "", progressDelay, 100*time.Millisecond)
}

func runProgress(w io.Writer, received *atomic.Int64, color bool, delay, every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var bar *progressbar.ProgressBar
		gate := &gatedWriter{w: w}
		var first time.Time
		for {
			select {
			case <-done:
				if bar != nil {
					bar.Finish() // clears the line, if it was ever drawn
				}
				return
			case <-tick.C:
			}
			n := received.Load()
			if n == 0 {
				continue
			}
			if bar == nil {
				first = time.Now()
				desc := "receiving"
				if color {
					desc = "[cyan]receiving[reset]"
				}
				bar = progressbar.NewOptions64(-1,
					progressbar.OptionSetWriter(gate),
					progressbar.OptionSetDescription(desc),
					progressbar.OptionEnableColorCodes(color),
					progressbar.OptionShowBytes(true),
					progressbar.OptionShowCount(), // render on every update: bytes, rate, elapsed
					progressbar.OptionSetElapsedTime(true),
					progressbar.OptionSpinnerType(14),
					progressbar.OptionClearOnFinish())
			}
			if !gate.open.Load() && time.Since(first) >= delay {
				gate.open.Store(true)
			}
			bar.Set64(n)
		}
	}()
	return func() { close(done); <-finished }
}

// gatedWriter drops writes until open, so a bar can keep its clock from
// the first byte yet stay off the screen for short transfers.
type gatedWriter struct {
	w    io.Writer
	open atomic.Bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if !g.open.Load() {
		return len(p), nil
	}
	return g.w.Write(p)
}
