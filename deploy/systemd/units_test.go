// The systemd units in this directory: checked by systemd-analyze and run,
// their ExecStart as written, under systemd-socket-activate.
package systemd_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// installedPath is where the units expect the binary.
const installedPath = "/usr/local/bin/tcplab"

var units = []string{"tcplab-svr.socket", "tcplab-svr.service", "tcplab-strsvr.socket", "tcplab-strsvr.service"}

// installUnits copies the units to a temporary directory with ExecStart
// pointing at the binary built for the tests (systemd-analyze verify
// checks that the program exists and is executable) and returns the
// directory.
func installUnits(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := testkit.Binary(t)
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "ExecStart="+installedPath, "ExecStart="+bin)
		if err := os.WriteFile(filepath.Join(dir, u), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (scripts/test.sh installs it)")
	}
	return p
}

// systemd-analyze verify finds nothing to say about the units: no unknown
// key, no bad value, the program there. (It exits 0 on warnings, so any
// output fails the test.)
func TestUnitsVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	dir := installUnits(t)
	args := []string{"verify"}
	for _, u := range units {
		args = append(args, filepath.Join(dir, u))
	}
	out, err := exec.Command(sa, args...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// exitTerminated is tcplab's exit status when SIGTERM stops it (README,
// "Errors"), exitInterrupted when SIGINT does.
const (
	exitTerminated  = 128 + int(syscall.SIGTERM)
	exitInterrupted = 128 + int(syscall.SIGINT)
)

// A stop is not a failure: each service lists tcplab's exit statuses for
// SIGTERM (systemctl stop) and SIGINT in SuccessExitStatus=, so systemd
// reads them as it would a death by those signals (clean, no
// Restart=on-failure).
func TestUnitsStopIsSuccess(t *testing.T) {
	for _, u := range units {
		if !strings.HasSuffix(u, ".service") {
			continue
		}
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "SuccessExitStatus="); ok {
				for _, f := range strings.Fields(rest) {
					listed[f] = true
				}
			}
		}
		for _, code := range []int{exitTerminated, exitInterrupted} {
			if !listed[strconv.Itoa(code)] {
				t.Errorf("%s: SuccessExitStatus= does not list %d", u, code)
			}
		}
	}
}

// The services are hardened: systemd-analyze security rates each at most
// 2.0 ("OK" or "SAFE"; an unhardened service rates 9.6 "UNSAFE").
func TestUnitsSecurity(t *testing.T) {
	sa := systemdAnalyze(t)
	dir := installUnits(t)
	level := regexp.MustCompile(`Overall exposure level for \S+: ([\d.]+) (\w+)`)
	for _, u := range units {
		if !strings.HasSuffix(u, ".service") {
			continue
		}
		out, err := exec.Command(sa, "security", "--offline=true", filepath.Join(dir, u)).CombinedOutput()
		m := level.FindSubmatch(out)
		if m == nil {
			t.Skipf("systemd-analyze security --offline unavailable here: %v: %s", err, lastLine(out))
		}
		score, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %s %s", u, m[1], m[2])
		if score > 2.0 {
			t.Errorf("%s: exposure %s %s, want at most 2.0\n%s", u, m[1], m[2], out)
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// execStart reads the unit's ExecStart arguments after the program, with
// the state directory specifier %S pointing at stateDir.
func execStart(t *testing.T, unit, stateDir string) []string {
	t.Helper()
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ExecStart="+installedPath+" "); ok {
			return strings.Fields(strings.ReplaceAll(rest, "%S", stateDir))
		}
	}
	t.Fatalf("%s: no ExecStart=%s line", unit, installedPath)
	return nil
}

// socketActivate runs the unit's command line under systemd-socket-activate
// on a free loopback port, as the .socket unit would start it.
func socketActivate(t *testing.T, unit, stateDir string) (*testkit.Proc, string) {
	t.Helper()
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (scripts/test.sh installs it)")
	}
	port := strconv.Itoa(testkit.StaticPort(t))
	args := append([]string{"-l", "127.0.0.1:" + port, testkit.Binary(t)}, execStart(t, unit, stateDir)...)
	p := testkit.Start(t, nil, ssa, args...)
	p.WaitFor(t, "Listening on 127.0.0.1:"+port, 10*time.Second)
	return p, port
}

func TestSVRUnitCommandSocketActivated(t *testing.T) {
	p, port := socketActivate(t, "tcplab-svr.service", "")
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("w"))
	out, err := io.ReadAll(c)
	if err != nil || !strings.Contains(string(out), "load average:") {
		t.Fatalf("w from the unit's svr: %q, %v; stderr %s", out, err, p.Stderr.String())
	}
	p.Cmd.Process.Signal(syscall.SIGTERM) // systemctl stop
	if code := p.Wait(t, 20*time.Second); code != exitTerminated {
		t.Fatalf("exit %d, want %d: %s", code, exitTerminated, p.Stderr.String())
	}
}

// The strsvr unit's command keeps v in its state directory across a
// restart, and prints the final v on stop.
func TestStrsvrUnitCommandSocketActivated(t *testing.T) {
	state := t.TempDir()
	if err := os.Mkdir(filepath.Join(state, "tcplab-strsvr"), 0o700); err != nil { // StateDirectory=
		t.Fatal(err)
	}
	for i, want := range []string{"a", "ab"} {
		p, port := socketActivate(t, "tcplab-strsvr.service", state)
		c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Mode: sharedstring.Classic})
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Send([]byte{"ab"[i]})
		c.Close()
		if err != nil || string(v) != want {
			t.Fatalf("run %d: %q, %v; stderr %s", i, v, err, p.Stderr.String())
		}
		p.Cmd.Process.Signal(syscall.SIGTERM) // systemctl stop
		if code := p.Wait(t, 20*time.Second); code != exitTerminated || p.Stdout.String() != "the final value of v is "+want+"\n" {
			t.Fatalf("run %d: exit %d (want %d), stdout %q, stderr %s", i, code, exitTerminated, p.Stdout.String(), p.Stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(state, "tcplab-strsvr", "v.log")); err != nil {
		t.Fatal(err)
	}
}
