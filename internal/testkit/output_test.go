package testkit

import (
	"testing"
	"time"
)

// Wait returns once all of the process's output is captured, not once
// the process has exited: exec.Cmd's WaitDelay (2 s, for a stdin the test
// never closes) used to cut the copy of stdout short. TestStrClntTenMegabytes
// lost the last 17 bytes of 10 MB that way at a load average near 20; here
// the last line comes 3 s after the exit, from a process that inherited
// the pipe, which shows the same cut without the load.
func TestWaitKeepsOutputWrittenAfterTheExit(t *testing.T) {
	// The pause is the point: output later than WaitDelay after the exit.
	p := Start(t, nil, "sh", "-c", "(sleep 3; echo tail) & echo head")
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := p.Stdout.String(); got != "head\ntail\n" {
		t.Fatalf("stdout %q, want head and tail", got)
	}
}
