package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// inProcess is a tcplab server run in-process (run, as main would call it)
// on port 0.
type inProcess struct {
	Addr   string // 127.0.0.1 and the port it logged
	Port   string
	Stderr *testkit.SafeBuffer
	cancel context.CancelFunc
	code   chan int      // run's exit status
	exited chan struct{} // closed when run has returned
}

// startInProcess runs "tcplab ARGS..." in-process with stdout (nil:
// discarded), and returns once it logs where it listens. Stop ends it; if
// the test does not, the test's end does and expects the exit status of
// an interrupt.
func startInProcess(t *testing.T, stdout io.Writer, args ...string) *inProcess {
	t.Helper()
	if stdout == nil {
		stdout = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{Stderr: &testkit.SafeBuffer{}, cancel: cancel, code: make(chan int, 1), exited: make(chan struct{})}
	go func() {
		p.code <- run(ctx, args, strings.NewReader(""), stdout, p.Stderr)
		close(p.exited)
	}()
	t.Cleanup(func() {
		if c := p.Stop(t); c != exitInterrupted && c != -2 { // a caller's cancel reads as Ctrl-C
			t.Errorf("%q exited %d, want %d: %s", args, c, exitInterrupted, p.Stderr.String())
		}
	})
	if !testkit.WaitWritten(10*time.Second, p.exited, func(out string) bool { p.Port = testkit.ListeningPortIn(out); return p.Port != "" }, p.Stderr) {
		t.Fatalf("%q not listening: %s", args, p.Stderr.String())
	}
	p.Addr = net.JoinHostPort("127.0.0.1", p.Port)
	return p
}

// Stop cancels the server's context (a signal) and returns its exit
// status once run has returned, or -2 if it was already stopped.
func (p *inProcess) Stop(t *testing.T) int {
	t.Helper()
	if p.code == nil {
		return -2
	}
	p.cancel()
	select {
	case c := <-p.code:
		p.code = nil
		return c
	case <-time.After(20 * time.Second):
		t.Fatalf("the server did not stop within 20 s: %s", p.Stderr.String())
		return -1
	}
}

// inProcessServer is startInProcess for a server whose standard output
// does not matter: its port and standard error.
func inProcessServer(t *testing.T, args ...string) (port string, stderr *testkit.SafeBuffer) {
	t.Helper()
	p := startInProcess(t, nil, args...)
	return p.Port, p.Stderr
}
