package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/multicopy"
)

// listeningPort reads the port a server reported in its "listening" log line.
func listeningPort(t *testing.T, p *testkit.Proc) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(p.ListenAddr(t, 10*time.Second))
	return port
}

// receivedTotal sums tmc.py-style "received N bytes" lines.
func receivedTotal(out string) (total, reads int) {
	for _, m := range regexp.MustCompile(`(?m)^received (\d+) bytes$`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
		reads++
	}
	return total, reads
}

// The tutorial's session: the client blocks until the go-ahead is typed at
// the server, then receives 10,000 copies in chunks.
func TestTMSAndTMCThroughTheBinary(t *testing.T) {
	bin := testkit.Binary(t)
	goAheadR, goAheadW := io.Pipe()
	srv := testkit.Start(t, goAheadR, bin, "tms", "0")
	port := listeningPort(t, srv)

	cli := testkit.Start(t, nil, bin, "tmc", "localhost", port, "abc")
	srv.WaitFor(t, "client is at 127.0.0.1:", 5*time.Second)
	srv.WaitFor(t, "press Enter", 5*time.Second)
	time.Sleep(200 * time.Millisecond) // the pause is the point: the client waits for a go-ahead typed late
	if out := cli.Stdout.String(); out != "" {
		t.Fatalf("client printed %q before the go-ahead", out)
	}
	goAheadW.Write([]byte("\n"))
	goAheadW.Close()
	if code := cli.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("tmc exit %d: %s", code, cli.Stderr.String())
	}
	if code := srv.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("tms exit %d: %s", code, srv.Stderr.String())
	}
	out := cli.Stdout.String()
	total, reads := receivedTotal(out)
	if total != 30000 || reads < 1 {
		t.Fatalf("received %d bytes in %d reads:\n%s", total, reads, out)
	}
	if !strings.HasPrefix(out, "abcabc") || !strings.Contains(out, fmt.Sprintf("summary: 30000 bytes in %d chunk", reads)) {
		t.Fatalf("unexpected output:\n%.300s", out)
	}
}

func TestPythonTMCAgainstTcplabTMS(t *testing.T) {
	py, bin := testkit.Python3(t), testkit.Binary(t)
	srv := testkit.Start(t, strings.NewReader("\n"), bin, "tms", "0")
	port := listeningPort(t, srv)
	cli := testkit.Start(t, nil, py, testkit.Testdata("tmc.py"), "127.0.0.1", port, "hello")
	if code := cli.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("tmc.py exit %d: %s", code, cli.Stderr.String())
	}
	total, _ := receivedTotal(cli.Stdout.String())
	if total != 50000 || !strings.HasPrefix(cli.Stdout.String(), "hellohello") {
		t.Fatalf("tmc.py received %d bytes:\n%.200s", total, cli.Stdout.String())
	}
	srv.Wait(t, 10*time.Second)
}

func TestTcplabTMCAgainstPythonTMS(t *testing.T) {
	bin := testkit.Binary(t)
	srv, port := testkit.StartPyServerInput(t, nil, strings.NewReader("\n"), "tms.py")
	cli := testkit.Start(t, nil, bin, "tmc", "--json", "127.0.0.1", port, "xyz")
	if code := cli.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("tmc exit %d: %s", code, cli.Stderr.String())
	}
	if !strings.Contains(cli.Stdout.String(), `"bytes":30000`) {
		t.Fatalf("tmc --json: %s", cli.Stdout.String())
	}
	srv.Wait(t, 10*time.Second)
	if !strings.Contains(srv.Stdout.String(), "client is at ('127.0.0.1'") {
		t.Fatalf("tms.py said %q", srv.Stdout.String())
	}
}

func TestRuntimeErrorsExit1WithOneClearLine(t *testing.T) {
	bin := testkit.Binary(t)
	busy, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	closedPort := strconv.Itoa(testkit.StaticPort(t))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"tms", busyPort}, "tcplab tms: listen :" + busyPort + ": address already in use"},
		{[]string{"tmc", "127.0.0.1", closedPort, "abc"}, "tcplab tmc: connect 127.0.0.1:" + closedPort + ": connection refused"},
		{[]string{"tmc", "nosuch.invalid", "2000", "abc"}, "tcplab tmc: unknown host nosuch.invalid"},
	}
	for _, c := range cases {
		p := testkit.Start(t, nil, bin, c.args...)
		code := p.Wait(t, 20*time.Second)
		if code != 1 || strings.TrimSpace(p.Stderr.String()) != c.want {
			t.Errorf("%q: exit %d, stderr %q; want 1, %q", c.args, code, p.Stderr.String(), c.want)
		}
	}
}

func TestTMCTimesOutOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server reads the string and its half-close, then says nothing
	// and keeps the connection open until the test ends.
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
			<-hold
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	code, _, errOut := runCmd(t, "", "tmc", "--timeout", "200ms", "127.0.0.1", port, "abc")
	if code != 1 || !strings.Contains(errOut, "timed out") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

// --keep: many clients at once, faults that cost the others nothing, a
// graceful stop on SIGTERM.
func TestTMSKeepServesManyAndStopsGracefully(t *testing.T) {
	bin := testkit.Binary(t)
	// 1,000 clients of one address at once: room for all of them, since
	// a client over a cap is refused, not queued.
	srv := testkit.Start(t, nil, bin, "tms", "--keep", "--copies", "500", "--grace", "5s",
		"--max-conns", "1100", "--max-conns-per-addr", "-1", "0")
	addr := "127.0.0.1:" + listeningPort(t, srv)

	// Faults first: connect-and-close, and a client leaving mid-transfer.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Write(bytes.Repeat([]byte("q"), 50_000))
		io.ReadFull(c, make([]byte, 1000))
		c.Close()
	}
	// 1,000 concurrent clients, each must receive exactly copies × length.
	const clients = 1000
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := fmt.Sprintf("%d\n", i)
			c.Write([]byte(msg))
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || string(got) != strings.Repeat(msg, 500) {
				errs <- fmt.Errorf("client %d: %d bytes, %v", i, len(got), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A 5 MB "message" is cut at the bound; the server goes on.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go c.Write(bytes.Repeat([]byte("m"), 5<<20))
	io.ReadFull(c, make([]byte, 1<<20))
	c.Close()

	srv.Cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.Wait(t, 15*time.Second); code != exitTerminated {
		t.Fatalf("tms --keep exit %d after SIGTERM: %s", code, srv.Stderr.String())
	}
	// The lines are under the log limit: the first few, then a count.
	if n := clientsSeen(srv.Stdout.String()); n < clients+3 {
		t.Fatalf("%d clients in the 'client is at' lines:\n%s", n, srv.Stdout.String())
	}
}

func TestTMCPlotWritesAPicture(t *testing.T) {
	bin := testkit.Binary(t)
	srv := testkit.Start(t, nil, bin, "tms", "--no-wait", "0")
	port := listeningPort(t, srv)
	dir := t.TempDir()
	for _, name := range []string{"chunks.png", "chunks.svg"} {
		if name == "chunks.svg" {
			srv = testkit.Start(t, nil, bin, "tms", "--no-wait", "0")
			port = listeningPort(t, srv)
		}
		path := filepath.Join(dir, name)
		cli := testkit.Start(t, nil, bin, "tmc", "--quiet", "--plot", path, "localhost", port, strings.Repeat("p", 1000))
		if code := cli.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("tmc --plot exit %d: %s", code, cli.Stderr.String())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if (name == "chunks.png" && !bytes.HasPrefix(b, []byte("\x89PNG"))) || (name == "chunks.svg" && !bytes.Contains(b[:min(len(b), 500)], []byte("<svg"))) {
			t.Fatalf("%s is not a picture: %.20q", name, b)
		}
		if out := cli.Stdout.String(); !strings.HasPrefix(out, "summary: 10000000 bytes") || strings.Contains(out, "received") {
			t.Fatalf("--quiet printed %q", out)
		}
		srv.Wait(t, 10*time.Second)
	}
}

// tms listens on every interface, IPv6 included; tmc takes an IPv6 literal.
func TestTMCOverIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Fatalf("this machine has no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	bin := testkit.Binary(t)
	srv := testkit.Start(t, nil, bin, "tms", "--no-wait", "--copies", "7", "0")
	port := listeningPort(t, srv)
	code, out, errOut := runCmd(t, "", "tmc", "--json", "--copies", "7", "::1", port, "v6")
	if code != 0 || !strings.Contains(out, `"bytes":14`) {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	srv.Wait(t, 10*time.Second)
	if !strings.Contains(srv.Stdout.String(), "client is at [::1]:") {
		t.Fatalf("tms said %q", srv.Stdout.String())
	}
}

// The progress bar is for people: never on a pipe or a file.
func TestProgressBarOnlyOnATerminal(t *testing.T) {
	var received atomic.Int64
	var buf bytes.Buffer
	stop := startProgress(&buf, &received, 0)
	received.Store(1 << 30)
	stop()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Past progressDelay on a fake clock: a bar would have been drawn.
	synctest.Test(t, func(t *testing.T) {
		stop := startProgress(f, &received, 1<<30)
		time.Sleep(2 * progressDelay)
		stop()
	})
	if info, _ := f.Stat(); buf.Len() != 0 || info.Size() != 0 {
		t.Fatalf("progress written to a non-terminal: %q, file %d bytes", buf.String(), info.Size())
	}
}

// tms --keep serves multicopy.DefaultMaxConns clients at once by default, not the server
// package's 10,000: each may hold a 1 MB message; a quarter of them from
// one address. The next client is told at once that the server is full,
// and is served once a slot is free.
func TestTMSKeepDefaultCapBoundsMemory(t *testing.T) {
	addr := startInProcess(t, nil, "tms", "--keep", "--grace", "100ms", "--copies", "1", "--gap", "1m", "0").Addr
	answer := func(src string) string {
		c := holdFrom(t, src, addr, "z\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		return string(got)
	}
	var held []net.Conn
	for i := range multicopy.DefaultMaxConns {
		// A string with no newline, ended only by --gap: each holds a
		// slot. (A silent client would not: the listener defers accept
		// until the first bytes arrive.)
		src := fmt.Sprintf("127.0.0.%d", 1+i/(multicopy.DefaultMaxConns/4))
		held = append(held, holdFrom(t, src, addr, "x"))
		if i == multicopy.DefaultMaxConns/4-1 {
			// The 251st from one address is over its share.
			if got, want := answer("127.0.0.1"), "busy: max number of connections from one address reached (250); try again later\n"; got != want {
				t.Fatalf("client 251 from 127.0.0.1: %q, want %q", got, want)
			}
		}
	}
	if got, want := answer("127.0.0.9"), "busy: max number of clients reached (1000); try again later\n"; got != want {
		t.Fatalf("client %d: %q, want %q", multicopy.DefaultMaxConns+1, got, want)
	}
	held[multicopy.DefaultMaxConns-1].Close() // one of 127.0.0.4's
	// The slot frees when tms sees the close, which gives no event here:
	// try again until a client is served.
	var got string
	if !testkit.Poll(10*time.Second, func() bool { got = answer("127.0.0.9"); return got == "z\n" }) {
		t.Fatalf("after a slot freed: %q", got)
	}
}

// Standard output that nobody reads (a pipe to a stopped program) must not
// stall the clients or the shutdown: the "client is at" lines are dropped,
// and the loss is reported on standard error.
func TestTMSKeepSurvivesAnUnreadStdout(t *testing.T) {
	pr, pw := io.Pipe() // never read: every write to pw blocks
	defer pr.Close()    // at the end, unblocks the output goroutine
	srv := startInProcess(t, pw, "tms", "--keep", "--grace", "100ms", "--copies", "1", "0")
	addr := srv.Addr
	for i := range 50 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("q\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "q\n" {
			t.Fatalf("client %d: %q, %v", i, got, err)
		}
	}
	if code := srv.Stop(t); code != exitInterrupted {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(srv.Stderr.String(), "lines of output were dropped") {
		t.Fatalf("no word of the lost lines in %q", srv.Stderr.String())
	}
}

// --read-size bounds every chunk, as recv(N) does.
func TestTMCReadSizeBoundsEveryChunk(t *testing.T) {
	bin := testkit.Binary(t)
	srv := testkit.Start(t, nil, bin, "tms", "--no-wait", "0")
	port := listeningPort(t, srv)
	code, out, errOut := runCmd(t, "", "tmc", "--json", "--read-size", "1000", "127.0.0.1", port, "abcdefghij")
	if code != 0 || !strings.Contains(out, `"bytes":100000`) || !strings.Contains(out, `"max_chunk":1000`) {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	srv.Wait(t, 10*time.Second)
	if code, _, _ := runCmd(t, "", "tmc", "--read-size", "0", "127.0.0.1", port, "x"); code != 2 {
		t.Fatalf("--read-size 0: exit %d, want 2", code)
	}
}

// tms --keep --grace 0: a stop resets a transfer in flight at once and the
// log says so, with the same lines as before the lifecycle moved into
// server.Run: "shutting down", the transfer reset, "grace period over".
func TestTMSKeepWithoutGraceSaysItClosed(t *testing.T) {
	srv := startInProcess(t, nil, "tms", "--keep", "--grace", "0", "--copies", "100000000", "0")
	c := holdFrom(t, "127.0.0.1", srv.Addr, "abcdefgh\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 8)); err != nil { // the transfer is under way
		t.Fatal(err)
	}
	if code := srv.Stop(t); code != exitInterrupted {
		t.Fatalf("tms exit %d, want %d", code, exitInterrupted)
	}
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client's transfer ended with %v, want a reset", err)
	}
	logs := srv.Stderr.String()
	for _, want := range []string{`msg="shutting down" grace=0s active=1`, `msg="transfer reset"`, `msg="grace period over; closed remaining connections"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}
