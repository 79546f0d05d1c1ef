package fleet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/status"
)

// shellServer is a server of the tutorial's protocol that hands the whole
// request (one read, as recv(1024) would) to run, which writes the answer;
// it returns its port.
func shellServer(t *testing.T, run func(req []byte) []byte) string {
	t.Helper()
	addr := testkit.ServeEach(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1024)
		n, _ := c.Read(buf)
		c.Write(run(buf[:n]))
	})
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// The probe runs nothing but ps on a server that hands more than the first
// two bytes of a request to a shell, however it does: as a shell's script
// on its standard input (socat EXEC:sh), through a shell's read and eval,
// through C's system() (which stops at a NUL), or through Python's
// os.popen. Before, the NUL was dropped by every shell, which then looked
// up and ran "pstcplab"; Python's os.popen raised on it, which kills a
// server like svr.py that reads more than two bytes.
func TestProbeRunsOnlyPSOnShellServers(t *testing.T) {
	im := testkit.NewImpostors(t, nil, append([]string{"pstcplab", "tcplab", "pstcplab#", "ps#tcplab"}, testkit.ImpostorNames...)...)
	env := testkit.EnvWithPath(im.Dir + ":" + status.FixedPath)
	py := testkit.PythonExe(t)
	shell := func(req []byte, argv ...string) []byte {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(req)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Errorf("%q: %v", argv, err)
		}
		return out
	}
	servers := map[string]func(req []byte) []byte{
		"sh script":     func(req []byte) []byte { return shell(req, "/bin/sh") },
		"bash script":   func(req []byte) []byte { return shell(req, "/bin/bash") },
		"sh read, eval": func(req []byte) []byte { return shell(req, "/bin/sh", "-c", `read -r l; eval "$l"`) },
		"bash read, $l": func(req []byte) []byte { return shell(req, "/bin/bash", "-c", `read -r l; $l`) },
		"C system()": func(req []byte) []byte {
			if i := bytes.IndexByte(req, 0); i >= 0 {
				req = req[:i] // a C string ends at the NUL
			}
			return shell(nil, "/bin/sh", "-c", string(req))
		},
		"Python os.popen": func(req []byte) []byte {
			return shell(req, py, "-c", "import os,sys; sys.stdout.write(os.popen(sys.stdin.read()).read())")
		},
	}
	for name, run := range servers {
		before := len(im.Ran())
		id, err := identify(context.Background(), "127.0.0.1", shellServer(t, run), noTimeout)
		if id.Tcplab {
			t.Errorf("%s: taken for tcplab svr: %+v, %v", name, id, err)
		}
		ran := im.Ran()[before:]
		if len(ran) == 0 {
			t.Errorf("%s: the probe ran nothing, not even ps (the server failed on it)", name)
		}
		for _, r := range ran {
			if cmd, _, _ := strings.Cut(r, " "); cmd != "ps" {
				t.Errorf("%s: the probe ran %q", name, r)
			}
		}
	}
}
