package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/status"

	"github.com/tcplab/tcplab/internal/testkit"
)

// startSVR starts "tcplab svr ARGS... 0" and returns the process and the
// port it reported.
func startSVR(t *testing.T, args ...string) (*testkit.Proc, string) {
	t.Helper()
	p := testkit.Start(t, nil, testkit.Binary(t), append(append([]string{"svr"}, args...), "0")...)
	// The log line, not standard output's "listening on port N".
	_, port, _ := net.SplitHostPort(p.ListenAddr(t, 20*time.Second))
	return p, port
}

// startPySVR starts the tutorial's svr.py (Python 3) on a free port.
func startPySVR(t *testing.T) string {
	t.Helper()
	return testkit.StartPyServer(t, nil, "svr.py")
}

// wpsRun runs the built tcplab wps with args and returns exit code and
// output.
func wpsRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	p := testkit.Start(t, nil, testkit.Binary(t), append([]string{"wps"}, args...)...)
	code := p.Wait(t, 60*time.Second)
	return code, p.Stdout.String(), p.Stderr.String()
}

func TestSVRAndWPSThroughTheBinary(t *testing.T) {
	srv, port := startSVR(t)
	code, out, errOut := wpsRun(t, "localhost", port, "w")
	if code != 0 || !strings.Contains(out, "load average:") || !strings.Contains(out, "USER     TTY") {
		t.Fatalf("wps w: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = wpsRun(t, "127.0.0.1", port, "ps")
	if code != 0 || !strings.HasPrefix(out, "USER       PID %CPU") {
		t.Fatalf("wps ps: exit %d, %q", code, out)
	}
	// An unknown command: exactly the one refusal line, printed as sent.
	code, out, _ = wpsRun(t, "127.0.0.1", port, "w;id")
	if code != 0 || out != "unknown command \"w;id\"; allowed: ps, w\n" {
		t.Fatalf("wps 'w;id': exit %d, %q", code, out)
	}
	srv.WaitFor(t, "client is at 127.0.0.1:", 5*time.Second)

	// nc, a classic client, ends the name with a newline.
	nc := exec.Command("nc", "127.0.0.1", port)
	nc.Stdin = strings.NewReader("ps\n")
	ncOut, err := runBounded(t, nc)
	if err != nil || !strings.HasPrefix(ncOut, "USER       PID") {
		t.Fatalf("nc: %v, %q", err, ncOut)
	}

	// Graceful stop on SIGTERM: exit 143 (README, "Errors").
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.Wait(t, 20*time.Second); code != exitTerminated {
		t.Fatalf("svr exit %d after SIGTERM: %s", code, srv.Stderr.String())
	}
}

func runBounded(t *testing.T, cmd *exec.Cmd) (string, error) {
	t.Helper()
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish", cmd.Path)
		return "", nil
	}
}

// The tutorial's programs, ported to Python 3, interoperate with ours both
// ways.
func TestSVRInteroperatesWithPython(t *testing.T) {
	py := testkit.Python3(t)
	_, port := startSVR(t)
	for _, tc := range []struct{ name, want string }{{"w", "load average:"}, {"ps", "USER       PID"}} {
		out, err := runBounded(t, exec.Command(py, testkit.Testdata("wps.py"), "127.0.0.1", port, tc.name))
		if err != nil || !strings.Contains(out, tc.want) {
			t.Fatalf("wps.py %s against tcplab svr: %v, %q", tc.name, err, out)
		}
	}

	pyPort := startPySVR(t)
	code, out, errOut := wpsRun(t, "127.0.0.1", pyPort, "w")
	// svr.py drops w's last line (rl[:-1]): with no users logged in, that is
	// the column header, and the uptime line remains.
	if code != 0 || !strings.Contains(out, "load average:") {
		t.Fatalf("tcplab wps against svr.py: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = wpsRun(t, "127.0.0.1", pyPort, "ps")
	if code != 0 || !strings.Contains(out, "PID") {
		t.Fatalf("tcplab wps ps against svr.py: exit %d, %q", code, out)
	}
}

func TestSVRUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"svr"}, "missing arguments"},
		{[]string{"svr", "x"}, `invalid port "x"`},
		{[]string{"svr", "--commands", "w,sh", "2000"}, `unknown command "sh"`},
		{[]string{"svr", "--allow", "10.0.0.0/99", "2000"}, `bad CIDR "10.0.0.0/99"`},
		{[]string{"svr", "--log-format", "xml", "2000"}, "--log-format"},
		{[]string{"wps", "localhost", "2000"}, "missing arguments"},
		{[]string{"wps", "--hosts", "a:1", "w", "ps"}, "too many arguments"},
		{[]string{"wps", "--hosts", ",", "w"}, "no hosts"},
		{[]string{"wps", "--hosts", "", "w"}, "no hosts"}, // was a panic: pos[1] of one positional
		{[]string{"wps", "--hosts="}, "no hosts"},
	} {
		code, _, errOut := runCmd(t, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestSVRMetricsAndJSONLogs(t *testing.T) {
	srv, port := startSVR(t, "--metrics", "127.0.0.1:0", "--log-format", "json", "--commands", "w,ps,json")
	code, out, _ := wpsRun(t, "127.0.0.1", port, "json")
	var facts struct {
		Procs int        `json:"procs"`
		Load  [3]float64 `json:"load"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &facts) != nil || facts.Procs == 0 {
		t.Fatalf("json: exit %d, %q", code, out)
	}
	srv.WaitFor(t, `"msg":"client is at"`, 5*time.Second)
	m := regexp.MustCompile(`"url":"(http://[^"]+)"`).FindStringSubmatch(srv.Stderr.String())
	if m == nil {
		t.Fatalf("no metrics url in %q", srv.Stderr.String())
	}
	// The request is counted once its answer is taken, which the client
	// may see first: poll the metrics, which give no event.
	var body string
	if !testkit.Poll(10*time.Second, func() bool {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `tcplab_svr_requests_total{command="json",result="ok"} 1`)
	}) {
		t.Fatalf("metrics: %q", body)
	}
}

// --native serves the reports rendered from /proc and utmp, as a server
// without procps would.
func TestSVRNative(t *testing.T) {
	srv, port := startSVR(t, "--native", "--commands", "w,ps,uptime")
	if !strings.Contains(srv.Stderr.String(), "runs=\"native renderer\"") {
		t.Errorf("start-up log does not say native: %q", srv.Stderr.String())
	}
	for _, tc := range []struct{ name, prefix string }{
		{"ps", "USER       PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n"},
		{"w", " "}, {"uptime", " "},
	} {
		code, out, _ := wpsRun(t, "127.0.0.1", port, tc.name)
		if code != 0 || !strings.HasPrefix(out, tc.prefix) || (tc.name != "ps" && !strings.Contains(out, "load average:")) {
			t.Errorf("%s: exit %d, %q", tc.name, code, out)
		}
	}
}

// The metrics port keeps at most status.MaxMetricsConns connections:
// silent connections beyond what a scraper needs cannot take descriptors
// without bound, nor keep a scraper out: the scrape makes room by closing
// the connection silent longest (before, it waited in the backlog).
func TestSVRMetricsPortCapsConnections(t *testing.T) {
	srv, _ := startSVR(t, "--metrics", "127.0.0.1:0")
	var url string
	if !testkit.WaitWritten(5*time.Second, srv.Done(), func(out string) bool {
		if m := regexp.MustCompile(`url=(http://\S+)`).FindStringSubmatch(out); m != nil {
			url = m[1]
		}
		return url != ""
	}, srv.Stderr) {
		t.Fatalf("no metrics url in %q", srv.Stderr.String())
	}
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range status.MaxMetricsConns {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape while %d silent connections held the port: %v", status.MaxMetricsConns, err)
	}
	resp.Body.Close()
	held[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := held[0].Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the oldest silent connection: read %d, %v; want it closed", n, err)
	}
}
