// Package procout holds what is shared by the tests and by programs that
// watch other processes (bench, the fault checkers): a buffer for a
// process's output that may be read while it is written and waited on,
// and the port a tcplab server logs that it listens on. It does not
// import testing, so bench can use it without linking the test kit.
package procout

import (
	"bytes"
	"reflect"
	"regexp"
	"sync"
	"time"
)

// listeningAddr matches the port in a server's "listening" log line
// (text or JSON): msg="tms listening" addr=[::]:37779.
var listeningAddr = regexp.MustCompile(`listening"?[^\n]*?"?addr"?[=:]"?(?:\[[^\]]*\]|[^\s:"]*):(\d+)`)

// ListeningPortIn returns the port in a tcplab server's "listening" log
// line within out, or "" if there is none yet.
func ListeningPortIn(out string) string {
	if m := listeningAddr.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// WaitWritten waits until cond holds for what one of bufs holds, woken by
// each write to them instead of polling. It reports false when d passes
// first, or when done (a process's exit; nil: never) is closed and cond
// still fails on the output written before it.
func WaitWritten(d time.Duration, done <-chan struct{}, cond func(text string) bool, bufs ...*Buffer) bool {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	holds := func() bool {
		for _, b := range bufs {
			if cond(b.String()) {
				return true
			}
		}
		return false
	}
	for {
		// The channels are taken before the look, so a write between the
		// look and the select still wakes it.
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timeout.C)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(done)},
		}
		for _, b := range bufs {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(b.Changed())})
		}
		if holds() {
			return true
		}
		switch i, _, _ := reflect.Select(cases); i {
		case 0:
			return false
		case 1:
			return holds() // what was written before the exit is in bufs now
		}
	}
}

// Buffer is a bytes.Buffer safe for one writer and concurrent readers,
// who may wait for its next write (Changed) instead of polling it.
type Buffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at the next write
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Changed returns a channel closed at the next write.
func (b *Buffer) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}
