package testkit

import (
	"testing"
	"time"
)

// StartPyServer starts testdata's Python server script (svr.py, tms.py,
// ...) with the environment env (nil: the test's own) and port 0 as its
// one argument, so the kernel gives it a free port as it binds, and
// returns that port once the script listens on it (ListeningPort).
//
// Not a port from FreePort: another test's server can take a port checked
// free before the script binds it, and a dial meant to see the script
// listening then reaches that server (TestWPSFleetSafeAgainstSvrPy would
// be answered by a tcplab svr, not svr.py).
func StartPyServer(tb testing.TB, env []string, script string) string {
	tb.Helper()
	p := StartEnv(tb, env, nil, PythonExe(tb), "-u", Testdata(script), "0")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if port := ListeningPort(p.Cmd.Process.Pid); port != "" {
			return port
		}
		select {
		case <-p.Done():
			tb.Fatalf("%s exited before listening; stderr %q", script, p.Stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not listening within 20s; stderr %q", script, p.Stderr.String())
		}
	}
}
