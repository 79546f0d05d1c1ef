package server

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// outputQueue is how many lines a server's output may hold while standard
// output or error is slow; flushWait is how long a stopping server waits for
// them to be written.
const (
	outputQueue = 4096
	flushWait   = 2 * time.Second
)

// Output is a server's standard output or error. It passes each write
// (one log record or one "client is at" line) to w from a goroutine of its
// own, through a queue. Connection handlers write to it and never wait on
// standard output or error: when nobody reads them (a pipe to a stopped
// program), lines are dropped and counted instead of stalling every
// handler, and the shutdown with them ("tcplab tms --keep | (a reader
// that stops)" once served 2,256 clients, then none, and still ran after
// SIGTERM and its grace).
type Output struct {
	w       io.Writer
	mu      sync.Mutex
	closed  bool
	lines   chan []byte
	done    chan struct{}
	dropped atomic.Int64
	onClose []func()
}

// NewOutput starts passing writes to w; Close stops it.
func NewOutput(w io.Writer) *Output {
	o := &Output{w: w, lines: make(chan []byte, outputQueue), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for p := range o.lines {
			if _, err := o.w.Write(p); err != nil {
				o.dropped.Add(1) // a closed pipe, a full disk: dropped, counted
			}
		}
	}()
	return o
}

// Write queues a copy of p, or drops it when the queue is full or the
// output is closed. A line that w then fails to take (EPIPE: nobody reads
// any more) is dropped and counted too: a server never stops for its logs.
// It never blocks and never fails.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return len(p), nil
	}
	select {
	case o.lines <- bytes.Clone(p):
	default:
		o.dropped.Add(1)
	}
	return len(p), nil
}

// OnClose has f run at the start of Close, while the output still takes
// writes: a LimitHandler writes the counts of the lines it held back.
func (o *Output) OnClose(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.onClose = append(o.onClose, f)
}

// Close writes what is queued, waiting at most flushWait for w, and
// returns how many writes were lost: dropped, or still queued when
// flushWait ran out. A goroutine still blocked on w then is left to the
// exiting process.
func (o *Output) Close() (lost int64) {
	o.mu.Lock()
	hooks := o.onClose
	o.onClose = nil
	o.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.lines)
	}
	o.mu.Unlock()
	select {
	case <-o.done:
		return o.dropped.Load()
	case <-time.After(flushWait):
		return o.dropped.Load() + int64(len(o.lines))
	}
}

// Dropped is how many writes were dropped so far.
func (o *Output) Dropped() int64 { return o.dropped.Load() }
