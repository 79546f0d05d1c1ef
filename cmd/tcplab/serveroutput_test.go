package main

import (
	"bytes"
	"sync"
	"syscall"
	"testing"

	"github.com/tcplab/tcplab/internal/server"
)

// failingFirst fails its first write (EPIPE) and keeps the rest; kept
// receives each write it keeps.
type failingFirst struct {
	mu     sync.Mutex
	failed bool
	kept   chan struct{}
	buf    bytes.Buffer
}

func (w *failingFirst) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.failed {
		w.failed = true
		return 0, syscall.EPIPE
	}
	w.buf.Write(p)
	select {
	case w.kept <- struct{}{}:
	default:
	}
	return len(p), nil
}

// closeServerOutput names the output that was not read: strsvr has no
// queued standard output (v is written whole at exit), so only standard
// error; tms and svr have both.
func TestCloseServerOutputSaysWhichWasNotRead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stdout bool
		want   string
	}{
		{"strsvr", false, "kept\ntcplab: 1 lines of output were dropped: standard error was not being read\n"},
		{"tms and svr", true, "kept\ntcplab: 1 lines of output were dropped: standard output or error was not being read\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &failingFirst{kept: make(chan struct{}, 1)}
			stderr := server.NewOutput(w)
			stderr.Write([]byte("dropped\n"))
			stderr.Write([]byte("kept\n"))
			<-w.kept // lines are written in order: the first is counted
			var stdout *server.Output
			if tc.stdout {
				stdout = server.NewOutput(&bytes.Buffer{})
			}
			closeServerOutput(stdout, stderr)
			w.mu.Lock()
			defer w.mu.Unlock()
			if got := w.buf.String(); got != tc.want {
				t.Fatalf("stderr %q, want %q", got, tc.want)
			}
		})
	}
}
