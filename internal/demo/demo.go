// Package demo is the tutorial's experiments, runnable: each Lesson starts
// its own servers and clients on loopback (ephemeral ports, nothing to set
// up), says in a few lines what the tutorial says, runs the experiment on
// real sockets and reports what it saw on this run.
//
// "tcplab demo" runs the lessons in order; the tests run each one and assert
// its Observations, so a lesson that stops showing its phenomenon fails the
// build rather than printing a stale story. docs/tutorial.md is the written
// companion, section by section.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Lesson is one experiment of the tour.
type Lesson struct {
	// Name is what "tcplab demo NAME" takes.
	Name string
	// Title is the lesson in one line.
	Title string
	// Section names the tutorial sections it illustrates.
	Section string
	// WritesFiles says the lesson writes to Options.OutDir.
	WritesFiles bool
	// Run performs the experiment, narrating to w, and returns what it
	// measured. It stops everything it started before returning, and
	// returns early with ctx's error when ctx ends.
	Run func(ctx context.Context, w io.Writer, opts Options) (Observations, error)
}

// Options are what the caller decides for every lesson.
type Options struct {
	// OutDir is where lessons write files: the chunk plot, and the link
	// lessons' captures (LESSON.pcap) and time-sequence graphs
	// (LESSON-seq.png). It must exist. Empty means lessons write no files.
	OutDir string
	// Report, if set, is called by Tour after each lesson with what it
	// measured (nil if it failed), its error and how long it took: the
	// figures for a report of the caller's own (tcplab demo --json).
	Report func(l Lesson, obs Observations, err error, took time.Duration)
}

// Observations is what a lesson measured on this run. Each lesson returns
// its own type (*udpObservations, ...), whose fields the tests assert.
type Observations interface {
	// Summary is the run's result in one line, for the end of the tour.
	Summary() string
}

// Lessons returns the lessons in tour order.
func Lessons() []Lesson {
	return []Lesson{
		lessonMAC,
		lessonNames,
		lessonPorts,
		lessonChunks,
		lessonLink,
		lessonLoss,
		lessonBlocking,
		lessonSendall,
		lessonLines,
		lessonTail,
		lessonNonblocking,
		lessonPoll,
		lessonUDP,
		lessonStatus,
		lessonShared,
		lessonLibraries,
	}
}

// Lookup returns the lesson called name.
func Lookup(name string) (Lesson, bool) {
	for _, l := range Lessons() {
		if l.Name == name {
			return l, true
		}
	}
	return Lesson{}, false
}

// Names lists the lesson names in tour order.
func Names() []string {
	var names []string
	for _, l := range Lessons() {
		names = append(names, l.Name)
	}
	return names
}

// lessonTimeout bounds any one lesson, so a broken experiment cannot hang
// the tour; every lesson normally takes well under five seconds.
const lessonTimeout = 20 * time.Second

// page prints a lesson's narration: what the tutorial says, what we do,
// what we saw. Write errors are remembered and reported once by err.
type page struct {
	w     io.Writer
	first error
}

func (p *page) line(prefix, format string, args ...any) {
	if p.first != nil {
		return
	}
	_, p.first = fmt.Fprintf(p.w, "  %s%s\n", prefix, fmt.Sprintf(format, args...))
}

// tutorial says what the tutorial says.
func (p *page) tutorial(format string, args ...any) { p.line("Tutorial: ", format, args...) }

// do says what the experiment does.
func (p *page) do(format string, args ...any) { p.line("We do:    ", format, args...) }

// saw reports a measurement of this run.
func (p *page) saw(format string, args ...any) { p.line("Seen:     ", format, args...) }

// note is a remark in Go terms.
func (p *page) note(format string, args ...any) { p.line("Go:       ", format, args...) }

func (p *page) err() error { return p.first }

// header is the line printed before a lesson runs.
func header(l Lesson) string {
	return fmt.Sprintf("== %s: %s (tutorial %s)", l.Name, l.Title, l.Section)
}

// listenLoopback listens on 127.0.0.1 on an ephemeral port.
func listenLoopback(ctx context.Context) (*net.TCPListener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	return ln.(*net.TCPListener), nil
}

// tcpPair returns the two ends of one loopback TCP connection: the client
// that dialled and the server side that was accepted.
func tcpPair(ctx context.Context) (client, server *net.TCPConn, err error) {
	ln, err := listenLoopback(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-ch
		return nil, nil, fmt.Errorf("dial loopback: %w", err)
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("accept on loopback: %w", a.err)
	}
	return c.(*net.TCPConn), a.c.(*net.TCPConn), nil
}

// port is the port of a TCP or UDP address.
func port(a net.Addr) int {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	return 0
}

// ms prints a duration in milliseconds with one decimal, the unit the
// lessons' delays are naturally in, or in microseconds below a millisecond.
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// byteCount prints n bytes in the unit a reader takes in at a glance.
func byteCount(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// count prints n and noun, plural when n is not 1: "1 read", "3 reads".
func count[T ~int | ~int64](n T, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// joinInts prints a list of numbers as "a, b, c".
func joinInts[T ~int | ~int32 | ~int64](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}

// errText is err's message without Go's layers ("message too long", not
// "write udp 127.0.0.1:1->127.0.0.1:2: write: message too long").
func errText(err error) string {
	if err == nil {
		return "no error"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
