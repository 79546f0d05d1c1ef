package testkit

import (
	"os/exec"
	"testing"
	"time"
)

// ListenAddr reads the port back from a server's "listening" log line, in
// text and in JSON, IPv4, IPv6 and wildcard.
func TestListenAddr(t *testing.T) {
	for _, line := range []string{
		`time=2026-12-01T16:36:42.508Z level=INFO msg="tms listening" addr=[::]:37779`,
		`time=2026-12-01T16:36:42.508Z level=INFO msg=listening addr=0.0.0.0:37779 allowed="ps, w"`,
		`{"time":"2026-12-01T16:36:42Z","level":"INFO","msg":"strsvr listening","addr":"[::1]:37779","discovery":true}`,
		`{"time":"2026-12-01T16:36:42Z","level":"INFO","msg":"listening","addr":"127.0.0.1:37779"}`,
	} {
		p := StartCmd(t, exec.Command("sh", "-c", "echo '"+line+"' >&2; exec sleep 60"))
		if got := p.ListenAddr(t, 10*time.Second); got != "127.0.0.1:37779" {
			t.Errorf("%s: ListenAddr = %q, want 127.0.0.1:37779", line, got)
		}
	}
}

// WaitFor is woken by the write it waits for, and sees output written
// just before the process exited.
func TestWaitForSeesTheLastWrite(t *testing.T) {
	p := StartCmd(t, exec.Command("sh", "-c", "echo one; echo two >&2"))
	p.WaitFor(t, "two", 10*time.Second)
	p.Wait(t, 10*time.Second)
	p.WaitFor(t, "one", time.Second)
}
