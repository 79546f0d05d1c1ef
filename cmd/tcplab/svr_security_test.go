package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/status"
)

// startSVREnv is startSVR with the server's environment set to env.
func startSVREnv(t *testing.T, env []string, args ...string) (*testkit.Proc, string) {
	t.Helper()
	p := testkit.StartEnv(t, env, nil, testkit.Binary(t), append(append([]string{"svr"}, args...), "0")...)
	// The log line, not standard output's "listening on port N".
	_, port, _ := net.SplitHostPort(p.ListenAddr(t, 20*time.Second))
	return p, port
}

// Through the binary: with impostors of loginctl, w, ps, sh, ... first on
// svr's PATH, every command, with the programs and --native, is answered
// and no impostor runs.
func TestSVRRunsNoImpostor(t *testing.T) {
	im := testkit.NewImpostors(t, nil)
	want := map[string]string{"w": "load average", "ps": "COMMAND", "uptime": "load average", "free": "Mem:", "df": "Filesystem", "json": `"uptime_seconds"`}
	for _, mode := range [][]string{nil, {"--native"}} {
		_, port := startSVREnv(t, testkit.EnvWithPath(im.Path()), append([]string{"--commands", "w,ps,uptime,free,df,json"}, mode...)...)
		for _, name := range []string{"w", "ps", "uptime", "free", "df", "json"} {
			code, out, errOut := wpsRun(t, "127.0.0.1", port, name)
			if code != 0 || !strings.Contains(out, want[name]) {
				t.Errorf("%q %s: exit %d, %q, %q", mode, name, code, out[:min(len(out), 200)], errOut)
			}
		}
	}
	if ran := im.Ran(); ran != nil {
		t.Fatalf("svr ran programs outside its allow-list: %q", ran)
	}
}

// wps --hosts is safe against the tutorial's svr.py: with impostors on
// svr.py's PATH (w and ps record their run, then answer), the table and
// "wps --hosts ... json" make svr.py run nothing but w and ps, while a
// tcplab svr in the same fleet still gives its structured form.
func TestWPSFleetSafeAgainstSvrPy(t *testing.T) {
	im := testkit.NewImpostors(t, []string{"w", "ps"})
	pyPort := testkit.StartPyServer(t, testkit.EnvWithPath(im.Path()), "svr.py")
	_, port := startSVR(t, "--commands", "w,ps,json")
	hosts := "127.0.0.1:" + pyPort + ",127.0.0.1:" + port

	code, out, errOut := wpsRun(t, "--hosts", hosts)
	if code != 0 || !regexp.MustCompile(`(?m)^127\.0\.0\.1:`+pyPort+` .* -$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^127\.0\.0\.1:`+port+` .* [1-9][0-9]*$`).MatchString(out) {
		t.Errorf("wps --hosts: exit %d, %q, %q", code, out, errOut)
	}
	// A failed host's line goes to standard error, the answers to standard
	// output (README, "Errors").
	code, out, errOut = wpsRun(t, "--hosts", hosts, "json")
	if code != 0 || !strings.Contains(errOut, "127.0.0.1:"+pyPort+": error: not known to be tcplab svr") || !strings.Contains(out, `"uptime_seconds"`) {
		t.Errorf("wps --hosts json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	ran := im.Ran()
	for _, r := range ran {
		if cmd, _, _ := strings.Cut(r, " "); cmd != "w" && cmd != "ps" {
			t.Errorf("svr.py ran %q", r)
		}
	}
	if len(ran) == 0 {
		t.Error("svr.py ran nothing: the test proves nothing")
	}
}

// Other processes' arguments reach clients only with --ps-args: a process
// whose command line holds a marker shows as its name in ps and json by
// default.
func TestSVRHidesOtherProcessesArguments(t *testing.T) {
	const marker = "--token=svr-args-marker"
	holder := testkit.Start(t, strings.NewReader(""), "/bin/sh", "-c", "sleep 60", "sh", marker)
	defer holder.Cmd.Process.Kill()
	for _, tc := range []struct {
		flags []string
		shown bool
	}{{nil, false}, {[]string{"--native"}, false}, {[]string{"--ps-args"}, true}, {[]string{"--ps-args", "--native"}, true}} {
		_, port := startSVR(t, append([]string{"--commands", "w,ps,json"}, tc.flags...)...)
		for _, name := range []string{"ps", "json"} {
			code, out, _ := wpsRun(t, "127.0.0.1", port, name)
			if code != 0 || strings.Contains(out, marker) != tc.shown {
				t.Errorf("svr %q, %s: exit %d, marker shown %v, want %v", tc.flags, name, code, strings.Contains(out, marker), tc.shown)
			}
		}
	}
}

// Silent connections from one address cannot delay a client from
// another: svr holds at most --max-conns-per-addr of them and refuses the
// next at once, while a w from 127.0.0.1 is answered.
func TestSVRPerAddressCap(t *testing.T) {
	_, port := startSVR(t, "--max-conns-per-addr", "4", "--rate", "0", "--read-timeout", "2s")
	addr := "127.0.0.1:" + port
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	var silent []net.Conn
	for range 5 {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Skipf("cannot connect from 127.0.0.2 here: %v", err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// Handed over after the kernel's deferred-accept second, four are held
	// and one is refused with the busy line, at once.
	got := make(chan string, len(silent))
	for _, c := range silent {
		go func() {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			b, _ := io.ReadAll(c)
			got <- string(b)
		}()
	}
	refusal := <-got
	if want := "busy: max number of connections from one address reached (4); try again later\n"; refusal != want {
		t.Fatalf("fifth silent connection got %q, want %q", refusal, want)
	}
	code, out, errOut := wpsRun(t, "127.0.0.1", port, "w")
	if code != 0 || !strings.Contains(out, "load average") {
		t.Fatalf("w from another address while one holds its cap: exit %d, %q, %q", code, out, errOut)
	}
	// The four held ones are served: closed, unanswered, at the read
	// timeout.
	for range 4 {
		if other := <-got; other != "" {
			t.Errorf("a held silent connection got %q", other)
		}
	}
}

// The automatic fallback, through the binary: svr started in a mount
// namespace of its own where w, ps and uptime are not installed (an empty,
// non-executable file bound over each) renders them natively, and still
// no impostor runs. --ps-args, or w would be rendered natively anyway.
func TestSVRRunsNoImpostorWithoutProcps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	if _, err := os.Stat("/usr/bin/unshare"); err != nil {
		t.Skip("needs /usr/bin/unshare (util-linux)")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var hide []string
	for _, prog := range []string{"w", "ps", "uptime"} {
		for _, dir := range filepath.SplitList(status.FixedPath) {
			p := filepath.Join(dir, prog)
			if real, err := filepath.EvalSymlinks(p); err == nil && !slices.Contains(hide, real) {
				hide = append(hide, real)
			}
		}
	}
	script := ""
	for _, p := range hide {
		script += "/usr/bin/mount --bind \"$0\" '" + p + "' && "
	}
	im := testkit.NewImpostors(t, nil)
	p := testkit.StartEnv(t, testkit.EnvWithPath(im.Path()), nil, "/usr/bin/unshare", "-m", "/bin/sh", "-c", script+"exec \"$@\"", empty,
		testkit.Binary(t), "svr", "--ps-args", "--commands", "w,ps,uptime,json", "0")
	p.ListenAddr(t, 20*time.Second) // the log line, not standard output's "listening on port N"
	errOut := p.Stderr.String()
	for _, name := range []string{"w", "ps", "uptime"} {
		if !regexp.MustCompile(`name=` + name + ` runs="native renderer"`).MatchString(errOut) {
			t.Skipf("could not hide %s from svr (mount in a namespace refused?): %q", name, errOut)
		}
	}
	m := regexp.MustCompile(`listening.*addr=\S*:(\d+)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no port in %q", errOut)
	}
	want := map[string]string{"w": "load average", "ps": "COMMAND", "uptime": "load average", "json": `"uptime_seconds"`}
	for name, w := range want {
		code, out, _ := wpsRun(t, "127.0.0.1", m[1], name)
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("%s: exit %d, %q", name, code, out[:min(len(out), 200)])
		}
	}
	if ran := im.Ran(); ran != nil {
		t.Fatalf("svr ran programs outside its allow-list: %q", ran)
	}
}

// The fleet view through the binary against a server that hands the
// whole request to a shell, as a script on its standard input (what
// socat TCP-LISTEN:...,fork EXEC:sh does; the test reads the request
// once, as recv would, so the shell sees its end): with impostors first on
// the shell's PATH, the table and --hosts json run nothing there but w
// and ps. Before, the probe ran "pstcplab" (the shell drops the NUL).
func TestWPSFleetSafeAgainstShellServer(t *testing.T) {
	im := testkit.NewImpostors(t, []string{"w", "ps"}, append([]string{"pstcplab", "tcplab"}, testkit.ImpostorNames...)...)
	host := testkit.ServeEach(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1024)
		n, _ := c.Read(buf)
		sh := exec.Command("/bin/sh")
		sh.Env = testkit.EnvWithPath(im.Path())
		sh.Stdin, sh.Stdout = bytes.NewReader(buf[:n]), c
		sh.Run()
	})
	code, out, errOut := wpsRun(t, "--timeout", "10s", "--hosts", host)
	if code != 0 || !strings.Contains(out, host+" ") {
		t.Errorf("wps --hosts: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = wpsRun(t, "--timeout", "10s", "--hosts", host, "json")
	if code == 0 || !strings.Contains(errOut, host+": error: not known to be tcplab svr") {
		t.Errorf("wps --hosts json: exit %d, stderr %q", code, errOut)
	}
	ran := im.Ran()
	for _, r := range ran {
		if cmd, _, _ := strings.Cut(r, " "); cmd != "w" && cmd != "ps" {
			t.Errorf("the shell server ran %q", r)
		}
	}
	if len(ran) == 0 {
		t.Error("the shell server ran nothing: the test proves nothing")
	}
}
