package server

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
)

// blockedWriter never returns from Write until released: standard output
// piped to a program that stopped reading.
type blockedWriter struct{ release chan struct{} }

func (w blockedWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// A reader that stops never holds a writer up: writes past the queue are
// dropped and counted, and Close gives up after flushWait and counts what
// was still queued.
func TestOutputNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := blockedWriter{make(chan struct{})}
		o := NewOutput(w)
		for range outputQueue + 10 {
			if n, err := o.Write([]byte("client is at 127.0.0.1:1\n")); n == 0 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		if o.Dropped() < 9 {
			t.Fatalf("Dropped = %d, want at least the 9 over the queue (one may be in the writer)", o.Dropped())
		}
		if lost := o.Close(); lost != outputQueue+10-1 {
			t.Fatalf("Close = %d lost, want all but the one being written", lost)
		}
		close(w.release) // the stuck write returns; its goroutine ends
	})
}

type failingWriter struct {
	mu  sync.Mutex
	got bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.HasPrefix(p, []byte("bad")) {
		return 0, errors.New("broken pipe")
	}
	return w.got.Write(p)
}

// Close writes everything queued, in order; a write the output refuses
// (EPIPE) is counted as lost, never returned to the handler.
func TestOutputFlushesInOrderAndCountsFailures(t *testing.T) {
	w := &failingWriter{}
	o := NewOutput(w)
	for _, line := range []string{"one\n", "bad\n", "two\n"} {
		o.Write([]byte(line))
	}
	if lost := o.Close(); lost != 1 {
		t.Fatalf("Close = %d lost, want 1", lost)
	}
	if got := w.got.String(); got != "one\ntwo\n" {
		t.Fatalf("written %q", got)
	}
	o.Write([]byte("late\n")) // after Close: dropped quietly
	if got := w.got.String(); got != "one\ntwo\n" {
		t.Fatalf("a write after Close reached w: %q", got)
	}
}
