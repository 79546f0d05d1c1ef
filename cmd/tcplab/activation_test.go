package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
)

// socketActivate starts "systemd-socket-activate -l 127.0.0.1:PORT tcplab
// ARGS...", which binds the port, waits for the first connection and then
// execs tcplab in its own place with the socket as fd 3 (LISTEN_FDS=1).
func socketActivate(t *testing.T, args ...string) (*testkit.Proc, string) {
	t.Helper()
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (scripts/test.sh installs it)")
	}
	port := strconv.Itoa(testkit.StaticPort(t))
	p := testkit.Start(t, nil, ssa, append([]string{"-l", "127.0.0.1:" + port, testkit.Binary(t)}, args...)...)
	p.WaitFor(t, "Listening on 127.0.0.1:"+port, 10*time.Second)
	return p, port
}

// activateWith starts "tcplab ARGS..." with files as its sockets from
// systemd (fd 3 on), set up as systemd does it: LISTEN_FDS, and
// LISTEN_PID naming the process itself (sh sets it, then execs tcplab).
func activateWith(t *testing.T, files []*os.File, args ...string) *testkit.Proc {
	t.Helper()
	script := `LISTEN_PID=$$ LISTEN_FDS=` + strconv.Itoa(len(files)) + ` exec "$0" "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, testkit.Binary(t)}, args...)...)
	cmd.ExtraFiles = files
	return testkit.StartCmd(t, cmd)
}

func TestTMSSocketActivated(t *testing.T) {
	p, port := socketActivate(t, "tms", "--no-wait", "--copies", "3")
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("abc\n"))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "abc\nabc\nabc\n" {
		t.Fatalf("tms through socket activation: %q, %v; stderr %s", got, err, p.Stderr.String())
	}
	if code := p.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, p.Stderr.String())
	}
	if !strings.Contains(p.Stderr.String(), `msg="tms listening" addr=127.0.0.1:`+port) {
		t.Fatalf("tms did not serve the socket it was given: %s", p.Stderr.String())
	}
}

func TestSVRSocketActivated(t *testing.T) {
	p, port := socketActivate(t, "svr", "--log-format", "json")
	code, out, errOut := wpsRun(t, "127.0.0.1", port, "w")
	if code != 0 || !strings.Contains(out, "load average:") {
		t.Fatalf("wps w through socket activation: exit %d, %q, %q; svr: %s", code, out, errOut, p.Stderr.String())
	}
	p.WaitFor(t, `"addr":"127.0.0.1:`+port+`"`, 10*time.Second)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 20*time.Second); code != exitTerminated {
		t.Fatalf("exit %d after SIGTERM, want %d: %s", code, exitTerminated, p.Stderr.String())
	}
}

// strsvr with only a stream socket from systemd: discovery is off (it
// opens no socket of its own), and the tutorial's session works.
func TestStrsvrSocketActivated(t *testing.T) {
	p, port := socketActivate(t, "strsvr")
	c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Mode: sharedstring.Classic})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Send([]byte("a")); err != nil || string(v) != "a" {
		t.Fatalf("send: %q, %v", v, err)
	}
	c.Close()
	if code := p.Wait(t, 20*time.Second); code != 0 || p.Stdout.String() != "the final value of v is a\n" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, p.Stdout.String(), p.Stderr.String())
	}
	if errOut := p.Stderr.String(); !strings.Contains(errOut, "systemd passed no datagram socket") || !strings.Contains(errOut, "discovery=false") {
		t.Fatalf("discovery not reported off: %s", errOut)
	}
}

// strsvr given a TCP listening socket and a UDP socket on the same port
// (ListenStream= and ListenDatagram= in one .socket unit) answers the
// discovery probe on the UDP one: strclnt goes framed.
func TestStrsvrSocketActivatedWithDiscovery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		ln.Close()
		t.Skipf("UDP port %d taken: %v", port, err)
	}
	tcpFile, _ := ln.(*net.TCPListener).File()
	udpFile, _ := pc.(*net.UDPConn).File()
	ln.Close()
	pc.Close()
	p := activateWith(t, []*os.File{udpFile, tcpFile}, "strsvr", "--keep")
	tcpFile.Close()
	udpFile.Close()
	p.WaitFor(t, "strsvr listening", 20*time.Second)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if !strings.Contains(p.Stderr.String(), "addr="+addr+" discovery=true") {
		t.Fatalf("start-up: %s", p.Stderr.String())
	}
	c, err := sharedstring.Dial(context.Background(), "127.0.0.1", strconv.Itoa(port), sharedstring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Framed() {
		t.Fatal("strclnt did not find the activated strsvr by its probe")
	}
	if v, err := c.Send([]byte("xy")); err != nil || string(v) != "xy" {
		t.Fatalf("send: %q, %v", v, err)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 20*time.Second); code != exitTerminated || p.Stdout.String() != "the final value of v is xy\n" {
		t.Fatalf("exit %d (want %d), stdout %q, stderr %s", code, exitTerminated, p.Stdout.String(), p.Stderr.String())
	}
}

// PORT may be given with a socket from systemd, but then must be its port;
// sockets tcplab cannot serve are refused in one line.
func TestSocketActivationErrors(t *testing.T) {
	listener := func() (*os.File, int) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, _ := ln.(*net.TCPListener).File()
		ln.Close()
		return f, ln.Addr().(*net.TCPAddr).Port
	}
	f1, port := listener()
	f2, _ := listener()
	defer f1.Close()
	defer f2.Close()
	for _, tc := range []struct {
		files []*os.File
		args  []string
		code  int
		want  string
	}{
		{[]*os.File{f1}, []string{"svr", strconv.Itoa(port + 1)}, 2, "PORT " + strconv.Itoa(port+1) + ", but systemd passed a socket on port " + strconv.Itoa(port) + ": leave PORT out"},
		{[]*os.File{f1}, []string{"tms", "x"}, 2, `invalid port "x"`},
		{[]*os.File{f1, f2}, []string{"strsvr"}, 1, "sockets from systemd: more than one TCP socket: tcplab serves one port"},
	} {
		p := activateWith(t, tc.files, tc.args...)
		code := p.Wait(t, 20*time.Second)
		if errOut := p.Stderr.String(); code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, %q; want %d and one line with %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	// The matching PORT is fine.
	p := activateWith(t, []*os.File{f1}, "svr", strconv.Itoa(port))
	p.WaitFor(t, "listening", 20*time.Second)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 20*time.Second); code != exitTerminated {
		t.Fatalf("svr with its own port: exit %d, want %d: %s", code, exitTerminated, p.Stderr.String())
	}
}

// Each server's help says PORT may be left out under socket activation.
func TestServersHelpNamesSocketActivation(t *testing.T) {
	for _, name := range []string{"tms", "svr", "strsvr"} {
		code, out, _ := runCmd(t, "", name, "--help")
		if code != 0 || !strings.Contains(out, "systemd socket activation") {
			t.Errorf("%s --help: exit %d, no word of socket activation:\n%s", name, code, out)
		}
	}
}
