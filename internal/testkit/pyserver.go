package testkit

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// StartPyServer starts testdata's Python server script (svr.py, tms.py,
// ...) with the environment env (nil: the test's own) and port 0 as its
// one argument, so the kernel gives it a free port as it binds, and
// returns that port once the script listens on it.
//
// Not a port chosen beforehand (StaticPort): another test's server can
// take a port checked free before the script binds it, and a dial meant to
// see the script listening then reaches that server
// (TestWPSFleetSafeAgainstSvrPy would be answered by a tcplab svr, not
// svr.py).
func StartPyServer(tb testing.TB, env []string, script string) string {
	tb.Helper()
	_, port := StartPyServerInput(tb, env, nil, script)
	return port
}

// reportListen runs before the script, which it then runs unchanged as
// __main__ with its arguments: once the script's first listen returns, it
// writes the port on file descriptor 3 and closes it. The test learns the
// port from that write, without polling the kernel's socket table and
// without connecting (a connect would be tms.py's only client).
const reportListen = `import os, runpy, socket, sys
listen = socket.socket.listen
def report(self, *args):
    listen(self, *args)
    global report_fd
    if report_fd is not None:
        os.write(report_fd, b"%d\n" % self.getsockname()[1])
        os.close(report_fd)
        report_fd = None
report_fd = 3
socket.socket.listen = report
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
`

// StartPyServerInput is StartPyServer with stdin as the script's standard
// input (tms.py's go-ahead), returning the process as well.
func StartPyServerInput(tb testing.TB, env []string, stdin io.Reader, script string) (*Proc, string) {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(PythonExe(tb), "-u", "-c", reportListen, Testdata(script), "0")
	cmd.Env, cmd.Stdin, cmd.ExtraFiles = env, stdin, []*os.File{w}
	p := StartCmd(tb, cmd)
	w.Close() // the script's copy is the only one: its exit is an end of file
	// A line once the script listens, or the end of file if it exits first.
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	var port string
	select {
	case port = <-line:
	case <-time.After(20 * time.Second):
		r.Close() // ends the read above
		<-line
	}
	if port == "" {
		tb.Fatalf("%s: not listening within 20s (exited: %v); stderr %q", script, p.Cmd.ProcessState != nil, p.Stderr.String())
	}
	return p, port
}
