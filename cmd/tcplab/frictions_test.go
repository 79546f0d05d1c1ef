package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// A client's PORT is from 1 to 65535: "tmc localhost http abc" said "from
// 0 to 65535", though 0 is refused for a client.
func TestClientPortRangeSaysFromOne(t *testing.T) {
	for _, args := range [][]string{
		{"tmc", "localhost", "http", "abc"},
		{"tmc", "localhost", "0", "abc"},
		{"wps", "localhost", "70000", "w"},
		{"strclnt", "localhost", "99999"},
	} {
		code, _, errOut := runCmd(t, "", args...)
		if code != exitUsage || !strings.Contains(errOut, "from 1 to 65535") || strings.Contains(errOut, "from 0") {
			t.Errorf("%q: exit %d, %q; want a port from 1 to 65535", args, code, errOut)
		}
	}
	// A server's PORT may be 0: any free port.
	if code, _, errOut := runCmd(t, "", "tms", "http"); code != exitUsage || !strings.Contains(errOut, "from 0 to 65535") {
		t.Errorf("tms http: exit %d, %q", code, errOut)
	}
}

// Every line a command prints of its own starts "tcplab CMD:": tmc's
// plot line started "tmc:".
func TestTMCPlotLineNamesTcplab(t *testing.T) {
	host, port := badTMS(t, func(m []byte) []byte { return bytes.Repeat(m, 3) })
	plot := filepath.Join(t.TempDir(), "c.png")
	code, _, errOut := runCmd(t, "", "tmc", "--quiet", "--copies", "3", "--plot", plot, host, port, "abc")
	if code != 0 || errOut != "tcplab tmc: chunk plot written to "+plot+"\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// "tcplab tms 0" listens on a port the kernel picks: it says which on its
// own line on standard output, where a tutorial reader looks ("client is
// at ..." comes there too), not only inside a log line. With a port
// given, the output stays the tutorial's.
func TestTMSZeroPrintsItsPort(t *testing.T) {
	srv := testkit.Start(t, nil, testkit.Binary(t), "tms", "--no-wait", "0")
	port := listeningPort(t, srv)
	if !testkit.WaitWritten(10*time.Second, srv.Done(), func(out string) bool { return strings.Contains(out, "\n") }, srv.Stdout) {
		t.Fatalf("nothing on stdout: %q", srv.Stdout.String())
	}
	if first, _, _ := strings.Cut(srv.Stdout.String(), "\n"); first != "listening on port "+port {
		t.Fatalf("first line %q, want %q", first, "listening on port "+port)
	}
	srv.Cmd.Process.Signal(os.Interrupt)
	srv.Wait(t, 10*time.Second)

	fixed := testkit.StaticPort(t)
	srv = testkit.Start(t, nil, testkit.Binary(t), "tms", "--no-wait", strconv.Itoa(fixed))
	listeningPort(t, srv)
	srv.Cmd.Process.Signal(os.Interrupt)
	srv.Wait(t, 10*time.Second)
	if out := srv.Stdout.String(); out != "" {
		t.Fatalf("tms %d printed %q: the tutorial's tms prints nothing before a client", fixed, out)
	}
}

// --hosts given twice silently kept the last list.
func TestWPSHostsTwiceIsAUsageError(t *testing.T) {
	code, _, errOut := runCmd(t, "", "wps", "--hosts", "a:1", "--hosts", "b:1", "w")
	if code != exitUsage || !strings.Contains(errOut, "--hosts given twice") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

// jsonLines decodes standard output of a server run with --json.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not a JSON line: %q in %q", line, out)
		}
		evs = append(evs, ev)
	}
	return evs
}

// Servers with --json write their start-up facts (the port they got),
// their clients and their end as JSON lines on standard output.
func TestServersJSON(t *testing.T) {
	t.Run("tms", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--json", "--no-wait", "--copies", "2", "0")
		port := srv.port(t)
		cli := startCmd(t, captured, captured, "tmc", "--quiet", "--copies", "2", "127.0.0.1", port, "abc")
		expectEnd(t, cli, exitOK, quiet)
		srv.wait(t)
		evs := jsonLines(t, srv.stdout.String())
		if len(evs) != 3 || evs[0]["event"] != "listening" || fmt.Sprint(evs[0]["port"]) != port || evs[0]["copies"] != 2.0 ||
			evs[1]["event"] != "client" || !strings.HasPrefix(evs[1]["addr"].(string), "127.0.0.1:") ||
			evs[2]["event"] != "end" || evs[2]["ok"] != true {
			t.Fatalf("events %v", evs)
		}
	})
	t.Run("svr stopped", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "svr", "--json", "0")
		port := srv.port(t)
		srv.waitOut(t, `"event":"listening"`)
		srv.signal(t, syscall.SIGTERM)
		expectEnd(t, srv, exitTerminated, `(?m)msg="shutting down"|msg=stopped|listening`)
		evs := jsonLines(t, srv.stdout.String())
		if len(evs) != 2 || fmt.Sprint(evs[0]["port"]) != port || evs[0]["tls"] != "off" || evs[1]["stopped_by"] != "SIGTERM" {
			t.Fatalf("events %v", evs)
		}
	})
	t.Run("strsvr final v", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "strsvr", "--json", "0")
		port := srv.port(t)
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("a\xff"))
		io.ReadFull(c, make([]byte, 3)) // "a", then "a\xff"
		c.Close()
		expectEnd(t, srv, exitOK, `(?m)msg="done: stopping"`)
		evs := jsonLines(t, srv.stdout.String())
		last := evs[len(evs)-2]
		if evs[0]["event"] != "listening" || last["event"] != "final" || last["bytes"] != 2.0 || last["v_base64"] != "Yf8=" || evs[len(evs)-1]["ok"] != true {
			t.Fatalf("events %v", evs)
		}
	})
}

// strclnt --json: each line of standard input sent, no prompt, and one
// object with the last v, ok and error, in framed and classic mode.
func TestStrclntJSON(t *testing.T) {
	_, port := startStrsvr(t, "--keep")
	for _, mode := range []string{"--framed", "--classic"} {
		code, out, errOut := runCmd(t, "x\ny\n", "strclnt", "--json", mode, "127.0.0.1", port)
		var rep map[string]any
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
			t.Fatalf("%s: exit %d, %v: %q %q", mode, code, err, out, errOut)
		}
		if rep["ok"] != true || rep["sent"] != 2.0 || rep["mode"] != strings.TrimPrefix(mode, "--") || !strings.HasSuffix(rep["v"].(string), "xy") {
			t.Fatalf("%s: %v", mode, rep)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, dead, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	code, out, _ := runCmd(t, "x\n", "strclnt", "--json", "--classic", "127.0.0.1", dead)
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep["ok"] != false || !strings.Contains(fmt.Sprint(rep["error"]), "connection refused") {
		t.Fatalf("nobody there: exit %d, %v: %q", code, err, out)
	}
}

// One style for numbers in what tcplab prints: plain digits, as the
// tutorial's programs print them ("15,000 bytes" and "15000 bytes" both
// appeared). The help of every command follows it.
func TestHelpNumbersArePlainDigits(t *testing.T) {
	grouped := regexp.MustCompile(`(^|[^\d./,])\d{1,3}(,\d{3})+\b`) // not a list of CIDRs
	for _, c := range commands {
		_, out, _ := runCmd(t, "", c.name, "--help")
		if m := grouped.FindString(out); m != "" {
			t.Errorf("%s --help writes %q", c.name, m)
		}
	}
}
