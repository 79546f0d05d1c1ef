package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/internal/testkit"
)

// The endings matrix runs the built binary, brings it to a stage, acts
// (a signal, a dead or silent peer, a closed output), and checks the exit
// status and the one line it printed. Every wait is for an event: a line
// the program prints, or a peer in the test seeing a byte.

// eventWait bounds the wait for any one event; nothing here should take
// more than a fraction of it.
const eventWait = 15 * time.Second

// cmdProc is the binary under test, with its standard output and error
// captured, or replaced by a closed pipe or /dev/full.
type cmdProc struct {
	cmd            *exec.Cmd
	stdout, stderr *testkit.SafeBuffer
	stdin          io.WriteCloser
	done           chan struct{}
}

// binary is the tcplab under test: the one built from this tree, or
// $TCPLAB_TEST_BINARY (to run the matrix against another build, such as
// the one before a fix).
func binary(t *testing.T) string {
	if b := os.Getenv("TCPLAB_TEST_BINARY"); b != "" {
		return b
	}
	return testkit.Binary(t)
}

// outputKind says where a command's standard output or error goes.
type outputKind int

const (
	captured  outputKind = iota
	closedOut            // a pipe whose reading end is closed: EPIPE on write
	fullOut              // /dev/full: ENOSPC on write
)

// startCmd starts the binary with args. Its standard input is a pipe the
// test writes to (stdin), closed when the test ends.
func startCmd(t *testing.T, stdout, stderr outputKind, args ...string) *cmdProc {
	t.Helper()
	p := &cmdProc{cmd: exec.Command(binary(t), args...), stdout: &testkit.SafeBuffer{}, stderr: &testkit.SafeBuffer{}, done: make(chan struct{})}
	in, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = in
	p.cmd.Stdout = output(t, stdout, p.stdout)
	p.cmd.Stderr = output(t, stderr, p.stderr)
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func output(t *testing.T, kind outputKind, buf io.Writer) io.Writer {
	switch kind {
	case closedOut:
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		t.Cleanup(func() { w.Close() })
		return w
	case fullOut:
		f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Skip("no /dev/full here")
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	return buf
}

// waitOut waits until standard output or error holds s.
func (p *cmdProc) waitOut(t *testing.T, s string) {
	t.Helper()
	if testkit.WaitWritten(eventWait, p.done, func(out string) bool { return strings.Contains(out, s) }, p.stdout, p.stderr) {
		return
	}
	select {
	case <-p.done:
		t.Fatalf("%v exited before printing %q: stdout %q stderr %q", p.cmd.Args[1:], s, p.stdout.String(), p.stderr.String())
	default:
		t.Fatalf("%v: no %q within %s: stdout %q stderr %q", p.cmd.Args[1:], s, eventWait, p.stdout.String(), p.stderr.String())
	}
}

// port waits for a server's "listening" log line and returns its port.
// (Its standard output may say "listening" first: "listening on port N"
// for port 0, or the --json "listening" event.)
func (p *cmdProc) port(t *testing.T) string {
	t.Helper()
	var port string
	if !testkit.WaitWritten(eventWait, p.done, func(out string) bool { port = testkit.ListeningPortIn(out); return port != "" }, p.stderr) {
		t.Fatalf("%v: no listening address logged: stdout %q stderr %q", p.cmd.Args[1:], p.stdout.String(), p.stderr.String())
	}
	return port
}

func (p *cmdProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the exit and returns the status (-1: killed by a signal).
func (p *cmdProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(eventWait):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%v did not exit within %s: stdout %q stderr %q", p.cmd.Args[1:], eventWait, p.stdout.String(), p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// internalText is what a user must never read: Go's error layers and the
// cancellations a stop causes.
var internalText = regexp.MustCompile(`context canceled|use of closed network connection|(read|write) tcp[46]? |panic|goroutine `)

// expectEnd waits for p and checks its exit status and the last line of
// its standard error: want is a regexp that line must match (one starting
// "(?m)" may match any line: a server's logs go on after its news); ""
// means standard error must be empty. Nothing Go-internal may appear anywhere.
func expectEnd(t *testing.T, p *cmdProc, code int, want string) {
	t.Helper()
	got := p.wait(t)
	errOut := p.stderr.String()
	switch {
	case got != code:
		t.Errorf("exit %d, want %d; stdout %q stderr %q", got, code, tail(p.stdout.String()), errOut)
	case want == "" && errOut != "":
		t.Errorf("stderr %q, want nothing", errOut)
	case strings.HasPrefix(want, "(?m)") && !regexp.MustCompile(want).MatchString(errOut):
		t.Errorf("no line matches /%s/; stderr %q", want, errOut)
	case want != "" && !strings.HasPrefix(want, "(?m)") && !regexp.MustCompile(want).MatchString(lastLine(errOut)):
		t.Errorf("last line %q, want /%s/; stderr %q", lastLine(errOut), want, errOut)
	}
	if m := internalText.FindString(errOut); m != "" {
		t.Errorf("stderr shows %q: %q", m, errOut)
	}
}

func tail(s string) string {
	if len(s) > 300 {
		return "..." + s[len(s)-300:]
	}
	return s
}

// peer is a fake server on loopback: for each connection it runs behave.
// It records when the first byte of a request has arrived (got), so the
// test acts when the client is known to be waiting for the answer.
type peer struct {
	port string
	got  chan struct{}
}

func startPeer(t *testing.T, behave func(c net.Conn, p *peer)) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{port: strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), got: make(chan struct{}, 16)}
	hold := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				behave(c, p)
				<-hold
			}()
		}
	}()
	t.Cleanup(func() { close(hold); ln.Close(); <-served })
	return p
}

// readSome reads the request's first bytes and reports them to the test.
func (p *peer) readSome(c net.Conn) {
	c.Read(make([]byte, 4096))
	p.got <- struct{}{}
}

func (p *peer) waitRequest(t *testing.T) {
	t.Helper()
	select {
	case <-p.got:
	case <-time.After(eventWait):
		t.Fatal("the peer never saw a request")
	}
}

// Peer behaviours.
func silentPeer(c net.Conn, p *peer)  { p.readSome(c) } // reads, never answers, holds on
func closingPeer(c net.Conn, p *peer) { p.readSome(c); c.Close() }

// resettingPeer answers with the start of an answer, then resets. With
// untilEOF it first reads the whole request and its half-close (tmc's);
// without, only the request's first bytes (wps does not half-close).
func resettingPeer(answer string, untilEOF bool) func(net.Conn, *peer) {
	return func(c net.Conn, p *peer) {
		if untilEOF {
			io.Copy(io.Discard, c)
			p.got <- struct{}{}
		} else {
			p.readSome(c)
		}
		c.Write([]byte(answer))
		tcpsock.Reset(c)
		c.Close()
	}
}
