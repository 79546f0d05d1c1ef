package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
)

// startPySVR starts the tutorial's svr.py with PATH set to path and
// returns its host:port.
func startPySVR(t *testing.T, path string) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", testkit.StartPyServer(t, testkit.EnvWithPath(path), "svr.py"))
}

// The fleet view never makes a server that hands requests to a shell run
// anything but w or ps: against svr.py with impostors on its PATH (w and
// ps record their run and then answer), the table and every command run
// only w and ps there. Before, the table's "json" made svr.py run "js".
func TestFleetSafeAgainstSvrPy(t *testing.T) {
	im := testkit.NewImpostors(t, []string{"w", "ps"})
	py := startPySVR(t, im.Path())
	ours := startSVR(t, "w", "ps", "json", "uptime")
	hosts := []string{py, ours}

	sums := SummarizeFleet(context.Background(), hosts, noLimit)
	if s := sums[0].Summary; s == nil || s.Source != "w" || sums[0].Error != "" {
		t.Errorf("svr.py in the table: %+v", sums[0])
	}
	if s := sums[1].Summary; s == nil || s.Source != "json" || s.Procs == 0 {
		t.Errorf("tcplab svr in the table: %+v", sums[1])
	}
	for _, name := range []string{"json", "uptime", "w", "ps"} {
		answers := AskFleet(context.Background(), hosts, name, noLimit)
		if safeForAnyServer(name) {
			if answers[0].Error != "" || answers[0].Output == "" {
				t.Errorf("%s to svr.py: %+v", name, answers[0])
			}
		} else if !strings.Contains(answers[0].Error, "not known to be tcplab svr") {
			t.Errorf("%s to svr.py: %+v", name, answers[0])
		}
		if answers[1].Error != "" || answers[1].Output == "" || strings.HasPrefix(answers[1].Output, "unknown command") {
			t.Errorf("%s to tcplab svr: %+v", name, answers[1])
		}
	}
	ran := im.Ran()
	for _, r := range ran {
		if cmd, _, _ := strings.Cut(r, " "); cmd != "w" && cmd != "ps" {
			t.Errorf("svr.py ran %q", r)
		}
	}
	if !slices.ContainsFunc(ran, func(r string) bool { return strings.HasPrefix(r, "w") }) {
		t.Errorf("svr.py never ran w (impostors ran: %q): the test proves nothing", ran)
	}
}

// identify tells tcplab svr by its answer to the probe, and learns what it
// allows; svr.py (which runs ps for the probe) and a server that echoes
// are not taken for it.
func TestIdentify(t *testing.T) {
	id, err := identify(context.Background(), "127.0.0.1", port(t, startSVR(t, "w", "ps", "json")), noTimeout)
	if err != nil || !id.Tcplab || !slices.Equal(id.Allowed, []string{"json", "ps", "w"}) {
		t.Fatalf("tcplab svr: %+v, %v", id, err)
	}
	id, err = identify(context.Background(), "127.0.0.1", port(t, startPySVR(t, os.Getenv("PATH"))), noTimeout)
	if id.Tcplab {
		t.Fatalf("svr.py taken for tcplab svr: %+v, %v", id, err)
	}
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 64)
		n, _ := c.Read(b)
		c.Write([]byte("unknown command \"ps #tcplab\"; allowed: a b\n"))
		c.Write(b[:n])
	}()
	if id, _ := identify(context.Background(), "127.0.0.1", port(t, echo.Addr().String()), noTimeout); id.Tcplab {
		t.Fatalf("a server answering something else after the line taken for tcplab svr: %+v", id)
	}
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The probe must not kill the server it probes. svr.py answers it with
// ps's output, written a line at a time, and dies of the broken pipe if the
// client closes before the last line (it catches nothing): so identify
// reads the whole answer (within MaxAnswer and the timeout), keeping only
// what it needs. Here svr.py's ps prints 100,000 lines; before, identify
// closed after 4 KiB, svr.py died, and the table's w found nobody
// listening.
func TestIdentifyLetsSvrPyFinish(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ps"), []byte("#!/bin/sh\nexec /usr/bin/seq 100000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	py := startPySVR(t, dir+":"+os.Getenv("PATH"))
	h, p, _ := net.SplitHostPort(py)
	for range 2 {
		if id, err := identify(context.Background(), h, p, noTimeout); id.Tcplab {
			t.Fatalf("svr.py taken for tcplab svr: %+v, %v", id, err)
		}
	}
	sums := SummarizeFleet(context.Background(), []string{py}, noLimit)
	if s := sums[0].Summary; s == nil || sums[0].Error != "" {
		t.Fatalf("svr.py after two probes: %+v", sums[0])
	}
}

// A host that refuses the probe because it is busy says so: the fleet view
// reports the refusal, not that the host is not known to be tcplab svr.
func TestFleetReportsBusyHost(t *testing.T) {
	host := testkit.ServeEach(t, func(c net.Conn) {
		c.Write([]byte(server.BusyLine("max number of clients reached (1)")))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
	})
	a := AskFleet(context.Background(), []string{host}, "json", noLimit)[0]
	if !strings.Contains(a.Error, "refused the connection: busy: max number of clients reached") {
		t.Errorf("busy host: %+v", a)
	}
}

func TestAskFleet(t *testing.T) {
	withJSON := startSVR(t, "w", "ps", "json")
	classic := startSVR(t, "w", "ps")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	hosts := []string{withJSON, classic, deadAddr, "nocolon"}

	answers := AskFleet(context.Background(), hosts, "w", noLimit)
	for i, a := range answers[:2] {
		if a.Host != hosts[i] || a.Error != "" || !strings.Contains(a.Output, "load average") {
			t.Errorf("answer %d: %+v", i, a)
		}
	}
	if !strings.Contains(answers[2].Error, "connection refused") || answers[3].Error == "" {
		t.Errorf("failures: %+v %+v", answers[2], answers[3])
	}

	sums := SummarizeFleet(context.Background(), hosts, noLimit)
	if s := sums[0].Summary; s == nil || s.Source != "json" || s.Procs == 0 {
		t.Errorf("json host: %+v", sums[0])
	}
	if s := sums[1].Summary; s == nil || s.Source != "w" || s.Uptime == "" {
		t.Errorf("classic host: %+v", sums[1])
	}
	if sums[2].Error == "" || sums[2].Summary != nil {
		t.Errorf("dead host: %+v", sums[2])
	}
}

func TestSummaryFromW(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Summary
		ok   bool
	}{
		{" 18:58:58 up 8 min,  0 user,  load average: 0.89, 0.61, 0.28", Summary{Uptime: "8 min", Users: 0, Load: [3]float64{0.89, 0.61, 0.28}, Source: "w"}, true},
		{" 10:01:02 up 3 days,  2:04,  2 users,  load average: 1.00, 2.50, 10.25", Summary{Uptime: "3 days, 2:04", Users: 2, Load: [3]float64{1, 2.5, 10.25}, Source: "w"}, true},
		{"10:01  up 5 days, 1 user, load averages: 1.50 1.40 1.30", Summary{Uptime: "5 days", Users: 1, Load: [3]float64{1.5, 1.4, 1.3}, Source: "w"}, true}, // BSD/macOS w
		{"USER     TTY", Summary{}, false},
		{"", Summary{}, false},
	} {
		got, ok := summaryFromW(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("summaryFromW(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

// A host that cannot be reached is a connect error, told by errors.Is, not
// by the text; a TLS handshake that fails is not one (the host is up, and
// the fleet view goes on as for any host it does not know).
func TestIsConnectError(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadHost, deadPort, _ := net.SplitHostPort(dead.Addr().String())
	dead.Close()
	_, err = Ask(context.Background(), deadHost, deadPort, "w", io.Discard, Options{Timeout: -1, MaxAnswer: -1})
	if err == nil || !isConnectError(err) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused: %v, isConnectError %v", err, isConnectError(err))
	}
	h, p, _ := net.SplitHostPort(startSVR(t, "w"))
	tlsCtx := endpoint.WithTLS(context.Background(), &tls.Config{RootCAs: x509.NewCertPool()})
	_, err = Ask(tlsCtx, h, p, "w", io.Discard, Options{Timeout: -1, MaxAnswer: -1})
	if err == nil || isConnectError(err) || !strings.HasPrefix(err.Error(), "tls handshake with") {
		t.Errorf("TLS to a plaintext server: %v, isConnectError %v", err, isConnectError(err))
	}
	if isConnectError(errors.New("connect 127.0.0.1:1: connection refused")) {
		t.Error("an error taken for a connect error by its text")
	}
}
