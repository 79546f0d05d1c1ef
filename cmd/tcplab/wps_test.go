package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

// A dead address: a port that was free a moment ago.
func deadHost(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(testkit.StaticPort(t))
}

// The fleet table: our server with the structured form, the tutorial's
// svr.py (w's first line), and an unreachable host on its own line.
func TestWPSFleetTable(t *testing.T) {
	_, port := startSVR(t, "--commands", "w,ps,json")
	pyPort := startPySVR(t)
	ours, py, dead := "127.0.0.1:"+port, "127.0.0.1:"+pyPort, deadHost(t)
	code, out, errOut := wpsRun(t, "--hosts", ours+","+py+","+dead)
	if code != 0 {
		t.Fatalf("exit %d: %q %q", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "HOST") {
		t.Fatalf("table:\n%s", out)
	}
	for i, host := range []string{ours, py} {
		f := strings.Fields(lines[i+1])
		if f[0] != host || len(f) < 7 {
			t.Errorf("row %d: %q", i+1, lines[i+1])
		}
	}
	if procs := strings.Fields(lines[1]); procs[len(procs)-1] == "-" {
		t.Errorf("our server's row has no process count: %q", lines[1])
	}
	// The failed host's line goes to standard error: standard output is
	// the table alone, for scripts.
	if !strings.HasPrefix(errOut, dead+": error: connect "+dead+": connection refused\n") {
		t.Errorf("dead host line %q", errOut)
	}
}

func TestWPSFleetCommandAndJSON(t *testing.T) {
	_, port := startSVR(t)
	ours, dead := "127.0.0.1:"+port, deadHost(t)
	code, out, errOut := wpsRun(t, "--hosts", ours+","+dead, "w")
	if code != 0 || !strings.HasPrefix(out, "== "+ours+" ==\n") || !strings.Contains(out, "load average:") ||
		strings.Contains(out, "error") || !strings.HasPrefix(errOut, dead+": error: connect") {
		t.Fatalf("exit %d:\n%s\nstderr %q", code, out, errOut)
	}

	code, out, _ = wpsRun(t, "--json", "--hosts", ours+","+dead, "ps")
	var answers []struct {
		OK                           bool
		Host, Command, Output, Error string
	}
	if err := json.Unmarshal([]byte(out), &answers); err != nil || code != 0 || len(answers) != 2 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if answers[0].Host != ours || !strings.HasPrefix(answers[0].Output, "USER") || !answers[0].OK || answers[1].Error == "" || answers[1].OK {
		t.Fatalf("answers %+v", answers)
	}
}

// One host with --json: one object with ok and, on failure, error (and
// exit 1).
func TestWPSOneHostJSON(t *testing.T) {
	dead := deadHost(t)
	host, port, _ := strings.Cut(dead, ":")
	code, out, _ := wpsRun(t, "--json", host, port, "w")
	var a struct {
		OK    *bool
		Error string
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil || code != 1 || a.OK == nil || *a.OK || !strings.Contains(a.Error, "connection refused") {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
}

// Non-zero only when every host failed.
func TestWPSAllHostsFailed(t *testing.T) {
	code, out, errOut := wpsRun(t, "--hosts", deadHost(t)+","+deadHost(t), "w")
	if code != 1 || out != "" || strings.Count(errOut, ": error: connect") != 2 || !strings.HasSuffix(errOut, "\ntcplab wps: every host failed\n") {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	dead := deadHost(t)
	host, port, _ := strings.Cut(dead, ":")
	code, _, errOut = wpsRun(t, host, port, "w")
	if code != 1 || errOut != "tcplab wps: connect "+dead+": connection refused\n" {
		t.Fatalf("single host: exit %d, %q", code, errOut)
	}
}

// A --hosts entry that is not host:port is a usage error (exit 2, one
// line), not a host that failed to answer.
func TestWPSMalformedHostIsAUsageError(t *testing.T) {
	for _, hosts := range []string{"nocolon", "web1:2000,web2", "web1:http", "web1:70000", "web1:0", "::1:2000"} {
		code, out, errOut := wpsRun(t, "--hosts", hosts, "w")
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--hosts") {
			t.Errorf("--hosts %q: exit %d, %q, %q; want 2 and one line", hosts, code, out, errOut)
		}
	}
}
