package testkit

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// StartPyServer starts testdata's Python server script (svr.py, tms.py,
// ...) with the environment env (nil: the test's own) on a free loopback
// port given as its one argument, and returns the port once it accepts
// connections. A port that FreePort found free can be taken before the
// script binds it (other tests' outgoing connections draw their local
// ports from the same range), and the script then exits at once; it is
// started again on another port, up to three times.
func StartPyServer(tb testing.TB, env []string, script string) string {
	tb.Helper()
	py := PythonExe(tb)
	for try := 1; ; try++ {
		port := strconv.Itoa(FreePort(tb))
		p := StartEnv(tb, env, nil, py, "-u", Testdata(script), port)
		addr := net.JoinHostPort("127.0.0.1", port)
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				return port
			}
			select {
			case <-p.Done():
			case <-time.After(10 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
				tb.Fatalf("%s: nothing listening on %s within 20s; stderr %q", script, addr, p.Stderr.String())
			}
			break // exited before listening
		}
		if try == 3 {
			tb.Fatalf("%s exited before listening, three times; last stderr %q", script, p.Stderr.String())
		}
	}
}
