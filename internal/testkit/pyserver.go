package testkit

import (
	"io"
	"testing"
	"time"
)

// StartPyServer starts testdata's Python server script (svr.py, tms.py,
// ...) with the environment env (nil: the test's own) and port 0 as its
// one argument, so the kernel gives it a free port as it binds, and
// returns that port once the script listens on it (ListeningPort).
//
// Not a port chosen beforehand (StaticPort): another test's server can take a port checked
// free before the script binds it, and a dial meant to see the script
// listening then reaches that server (TestWPSFleetSafeAgainstSvrPy would
// be answered by a tcplab svr, not svr.py).
func StartPyServer(tb testing.TB, env []string, script string) string {
	tb.Helper()
	_, port := StartPyServerInput(tb, env, nil, script)
	return port
}

// StartPyServerInput is StartPyServer with stdin as the script's standard
// input (tms.py's go-ahead), returning the process as well.
func StartPyServerInput(tb testing.TB, env []string, stdin io.Reader, script string) (*Proc, string) {
	tb.Helper()
	p := StartEnv(tb, env, stdin, PythonExe(tb), "-u", Testdata(script), "0")
	var port string
	// The kernel's socket table gives no event: poll it, without
	// connecting (a connect would be tms.py's only client).
	Poll(20*time.Second, func() bool {
		port = ListeningPort(p.Cmd.Process.Pid)
		select {
		case <-p.Done():
			return true
		default:
			return port != ""
		}
	})
	if port == "" {
		tb.Fatalf("%s: not listening within 20s (exited: %v); stderr %q", script, p.Cmd.ProcessState != nil, p.Stderr.String())
	}
	return p, port
}
