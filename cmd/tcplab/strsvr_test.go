package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

// The tutorial's transcripts (section 6), as a terminal shows them: the
// typed letter and Enter are echoed after each prompt.
const (
	tutorialClient1 = `enter a letter:a
a
enter a letter:b
ab
enter a letter:c
abc
enter a letter:d
abcuuvvd
enter a letter:e
abcuuvvdwwe
enter a letter:
`
	tutorialClient2 = `enter a letter:u
abcu
enter a letter:u
abcuu
enter a letter:v
abcuuv
enter a letter:v
abcuuvv
enter a letter:w
abcuuvvdw
enter a letter:w
abcuuvvdww
enter a letter:
`
	tutorialServer = "the final value of v is abcuuvvdwwe\n"
	prompt         = "enter a letter:"
)

// asTerminal puts back what a terminal would echo: each typed line after its
// prompt.
func asTerminal(stdout string, typed []string) string {
	var b strings.Builder
	parts := strings.Split(stdout, prompt)
	b.WriteString(parts[0])
	for i, p := range parts[1:] {
		b.WriteString(prompt)
		if i < len(typed) {
			b.WriteString(typed[i] + "\n")
		}
		b.WriteString(p)
	}
	return b.String()
}

// startStrsvr starts the built strsvr with args on port 0 and returns it
// with the port it reports in its "strsvr listening" log line.
func startStrsvr(t *testing.T, args ...string) (*testkit.Proc, string) {
	t.Helper()
	return startStrsvrOn(t, "0", args...)
}

// startStrsvrOn is startStrsvr on a given port (a restart on the port of
// the run before).
func startStrsvrOn(t *testing.T, port string, args ...string) (*testkit.Proc, string) {
	t.Helper()
	return startStrsvrEnv(t, nil, port, args...)
}

// startStrsvrEnv is startStrsvrOn with the environment env (nil: the
// test's own).
func startStrsvrEnv(t *testing.T, env []string, port string, args ...string) (*testkit.Proc, string) {
	t.Helper()
	p := testkit.StartEnv(t, env, nil, testkit.Binary(t), append(append([]string{"strsvr"}, args...), port)...)
	p.WaitFor(t, `msg="strsvr listening"`, 15*time.Second)
	m := regexp.MustCompile(`msg="strsvr listening" addr=\S*:(\d+)`).FindStringSubmatch(p.Stderr.String())
	if m == nil {
		t.Fatalf("no port in strsvr's log: %q", p.Stderr.String())
	}
	return p, m[1]
}

type typist struct {
	proc  *testkit.Proc
	in    *os.File
	want  string // stdout expected so far
	typed []string
}

// stdinPipe returns a pipe for a child's standard input. An *os.File, not
// an io.Pipe: the child reads it directly, so no copying goroutine keeps
// Wait from returning when the child is killed.
func stdinPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func startTypist(t *testing.T, name string, args ...string) *typist {
	pr, pw := stdinPipe(t)
	p := testkit.Start(t, pr, name, args...)
	ty := &typist{proc: p, in: pw, want: prompt}
	// A bound on a process's start (Python's, for strclnt.py), not a wait:
	// at a load average of 27 on 2 cores strclnt.py had not printed its
	// prompt after 10 s (1 of 5 runs of TestStrTutorialSession).
	p.WaitFor(t, prompt, 30*time.Second)
	return ty
}

// typeLetter types a letter and waits for the reply and the next prompt.
func (ty *typist) typeLetter(t *testing.T, letter, reply string) {
	t.Helper()
	ty.typed = append(ty.typed, letter)
	io.WriteString(ty.in, letter+"\n")
	ty.want += reply + "\n" + prompt
	settled := testkit.WaitWritten(10*time.Second, ty.proc.Done(), func(got string) bool {
		return got == ty.want || !strings.HasPrefix(ty.want, got)
	}, ty.proc.Stdout)
	if got := ty.proc.Stdout.String(); !settled || got != ty.want {
		t.Fatalf("after %q: stdout %q, want %q (stderr %q)", letter, got, ty.want, ty.proc.Stderr.String())
	}
}

// leave types the empty line and waits for the client to exit 0.
func (ty *typist) leave(t *testing.T) string {
	t.Helper()
	ty.typed = append(ty.typed, "")
	io.WriteString(ty.in, "\n")
	ty.in.Close()
	if code := ty.proc.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("client exit %d, stderr %q", code, ty.proc.Stderr.String())
	}
	return asTerminal(ty.proc.Stdout.String(), ty.typed)
}

// The tutorial's session, scripted, with tcplab and the tutorial's Python
// programs (ported to Python 3) on either side.
func TestStrTutorialSession(t *testing.T) {
	bin := testkit.Binary(t)
	py := testkit.Python3(t)
	tcplabSvr := func(args ...string) func(*testing.T) (*testkit.Proc, string) {
		return func(t *testing.T) (*testkit.Proc, string) { return startStrsvr(t, args...) }
	}
	// The tutorial's strsvr.py says nothing when it listens: it binds
	// port 0, and the kernel's table shows the port.
	pythonSvr := func(t *testing.T) (*testkit.Proc, string) {
		return testkit.StartPyServerInput(t, nil, nil, "strsvr.py")
	}
	tcplabClnt := func(port string) []string { return []string{bin, "strclnt", "localhost", port} }
	pythonClnt := func(port string) []string {
		return []string{py, "-u", testkit.Testdata("strclnt.py"), "localhost", port}
	}
	cases := []struct {
		name string
		svr  func(*testing.T) (*testkit.Proc, string)
		clnt func(string) []string
	}{
		{"tcplab both sides", tcplabSvr(), tcplabClnt},
		{"python strsvr, tcplab strclnt", pythonSvr, tcplabClnt},
		{"tcplab strsvr, python strclnt", tcplabSvr(), pythonClnt},
		{"tcplab strsvr --clients 2", tcplabSvr("--clients", "2"), tcplabClnt},
		// Both clients on one machine, one address: a small --max-conns
		// must not make its per-address share (a quarter) shut the
		// gathering's second client out.
		{"tcplab strsvr --clients 2 --max-conns 4", tcplabSvr("--clients", "2", "--max-conns", "4"), tcplabClnt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svr, ps := tc.svr(t)
			c := tc.clnt(ps)
			one := startTypist(t, c[0], c[1:]...)
			two := startTypist(t, c[0], c[1:]...)
			steps := []struct {
				who          *typist
				letter, want string
			}{
				{one, "a", "a"}, {one, "b", "ab"}, {one, "c", "abc"},
				{two, "u", "abcu"}, {two, "u", "abcuu"}, {two, "v", "abcuuv"}, {two, "v", "abcuuvv"},
				{one, "d", "abcuuvvd"},
				{two, "w", "abcuuvvdw"}, {two, "w", "abcuuvvdww"},
				{one, "e", "abcuuvvdwwe"},
			}
			for _, s := range steps {
				s.who.typeLetter(t, s.letter, s.want)
			}
			if got := one.leave(t); got != tutorialClient1 {
				t.Errorf("first client:\n%s\nwant:\n%s", got, tutorialClient1)
			}
			if got := two.leave(t); got != tutorialClient2 {
				t.Errorf("second client:\n%s\nwant:\n%s", got, tutorialClient2)
			}
			if code := svr.Wait(t, 10*time.Second); code != 0 {
				t.Fatalf("server exit %d, stderr %q", code, svr.Stderr.String())
			}
			if got := svr.Stdout.String(); got != tutorialServer {
				t.Fatalf("server printed %q, want %q", got, tutorialServer)
			}
		})
	}
}

func TestStrSvrSignalPrintsFinalValue(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			svr, port := startStrsvr(t, "--keep")
			c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if v, err := c.Send([]byte("ab")); err != nil || string(v) != "ab" {
				t.Fatalf("%q %v", v, err)
			}
			svr.Cmd.Process.Signal(sig)
			if code := svr.Wait(t, 10*time.Second); code != 128+int(sig) {
				t.Fatalf("exit %d: %q", code, svr.Stderr.String())
			}
			if got := svr.Stdout.String(); got != "the final value of v is ab\n" {
				t.Fatalf("printed %q", got)
			}
			if _, err := c.Send([]byte("c")); err == nil {
				t.Fatal("client still served after the server stopped")
			}
		})
	}
}

// kill -9 in the middle of a stream of letters: after a restart, v holds
// every byte that was answered.
func TestStrSvrDataSurvivesKill9(t *testing.T) {
	for _, policy := range []string{"always", "interval"} {
		t.Run(policy, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "v.log")
			args := []string{"--keep", "--data", data, "--fsync", policy}
			svr, ps := startStrsvr(t, args...)
			var mu sync.Mutex
			answered := map[int][]byte{}
			// The kill comes once a few hundred letters are answered,
			// in the midst of the stream.
			streaming := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() {
					c, err := sharedstring.Dial(context.Background(), "127.0.0.1", ps, sharedstring.Options{Mode: sharedstring.Mode(1 + i%2)})
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					for {
						v, err := c.Send([]byte{byte('a' + i)})
						if err != nil {
							return // the server was killed
						}
						mu.Lock()
						answered[i] = v
						mu.Unlock()
						if len(v) >= 400 {
							once.Do(func() { close(streaming) })
						}
					}
				})
			}
			select {
			case <-streaming:
			case <-svr.Done():
				t.Fatalf("server exited: %q", svr.Stderr.String())
			}
			svr.Cmd.Process.Signal(syscall.SIGKILL)
			svr.Wait(t, 10*time.Second)
			wg.Wait()
			longest := []byte{}
			for _, v := range answered {
				if len(v) > len(longest) {
					longest = v
				}
			}
			if len(longest) == 0 {
				t.Fatal("no letter answered before the kill")
			}
			svr, _ = startStrsvrOn(t, ps, args...)
			c, err := sharedstring.Dial(context.Background(), "127.0.0.1", ps, sharedstring.Options{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := c.Send([]byte("Z"))
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range answered {
				if !bytes.HasPrefix(v, a) {
					t.Fatalf("client %d's last answered v (%d bytes) lost: v after restart has %d bytes", i, len(a), len(v))
				}
			}
			t.Logf("%d bytes answered before kill -9, %d recovered", len(longest), len(v)-1)
			svr.Cmd.Process.Signal(syscall.SIGTERM)
			if code := svr.Wait(t, 10*time.Second); code != exitTerminated {
				t.Fatalf("exit %d", code)
			}
		})
	}
}

// A 10 MB v comes whole to the tcplab client, and the server exits with it
// when that client leaves.
func TestStrClntTenMegabytes(t *testing.T) {
	bin := testkit.Binary(t)
	data := filepath.Join(t.TempDir(), "v.log")
	st, err := store.OpenFile(data, store.FileOptions{Fsync: store.FsyncInterval})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789"), 1<<20)
	if _, err := st.Append(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	st.Close()
	svr, port := startStrsvr(t, "--data", data)
	clnt := testkit.Start(t, strings.NewReader("x\n\n"), bin, "strclnt", "localhost", port)
	if code := clnt.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("client exit %d: %q", code, clnt.Stderr.String())
	}
	want := prompt + string(big) + "x\n" + prompt
	if got := clnt.Stdout.String(); got != want {
		t.Fatalf("client printed %d bytes, want %d", len(got), len(want))
	}
	if code := svr.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	if got := svr.Stdout.String(); got != "the final value of v is "+string(big)+"x\n" {
		t.Fatalf("server printed %d bytes", len(got))
	}
}

func TestStrWatch(t *testing.T) {
	bin := testkit.Binary(t)
	// v starts as "v:", so that the watcher prints it when it has joined:
	// the event the typing client waits for.
	data := filepath.Join(t.TempDir(), "v.log")
	st, err := store.OpenFile(data, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), []byte("v:")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	svr, ps := startStrsvr(t, "--data", data)
	pr, pw := stdinPipe(t)
	watcher := testkit.Start(t, pr, bin, "strclnt", "--watch", "localhost", ps)
	watcher.WaitFor(t, "v:\n", 10*time.Second)
	c := testkit.Start(t, strings.NewReader("h\ni\n\n"), bin, "strclnt", "localhost", ps)
	c.Wait(t, 10*time.Second)
	watcher.WaitFor(t, "v:hi\n", 10*time.Second)
	io.WriteString(pw, "!\n")
	watcher.WaitFor(t, "v:hi!\n", 10*time.Second)
	io.WriteString(pw, "\n")
	if code := watcher.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("watcher exit %d: %q", code, watcher.Stderr.String())
	}
	if code := svr.Wait(t, 10*time.Second); code != 0 || svr.Stdout.String() != "the final value of v is v:hi!\n" {
		t.Fatalf("server exit %d, printed %q", code, svr.Stdout.String())
	}
}

func TestStrUsageErrors(t *testing.T) {
	cases := [][]string{
		{"strsvr"},
		{"strsvr", "x"},
		{"strsvr", "--fsync", "sometimes", "2000"},
		{"strsvr", "--clients", "-1", "2000"},
		{"strsvr", "--clients", "5", "--max-conns", "4", "2000"},
		{"strclnt", "localhost"},
		{"strclnt", "localhost", "99999"},
		{"strclnt", "--classic", "--watch", "localhost", "2000"},
	}
	for _, args := range cases {
		code, _, errOut := runCmd(t, "", args...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%q: exit %d, %q", args, code, errOut)
		}
	}
	// A runtime failure is one line and exit 1.
	port := testkit.StaticPort(t)
	code, _, errOut := runCmd(t, "a\n", "strclnt", "127.0.0.1", strconv.Itoa(port))
	if code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("strclnt to nothing: exit %d, %q", code, errOut)
	}
	f := filepath.Join(t.TempDir(), "notes")
	os.WriteFile(f, []byte("not a log"), 0o644)
	code, _, errOut = runCmd(t, "", "strsvr", "--data", f, "0")
	if code != 1 || !strings.Contains(errOut, "not a strsvr data file") {
		t.Errorf("strsvr --data notes: exit %d, %q", code, errOut)
	}
}

// A standard error that nobody reads (a pipe to a stopped program) must
// not stall the server: log lines are dropped, not waited for, clients are
// served and dropped as ever, and the final value of v is still printed,
// whole, on standard output.
func TestStrSvrSurvivesAnUnreadStderr(t *testing.T) {
	pr, pw := io.Pipe() // never read: every write to pw blocks
	defer pr.Close()    // at the end, unblocks the output goroutine
	var out testkit.SafeBuffer
	port := testkit.StaticPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"strsvr", "--keep", "--no-discovery", "--read-timeout", "100ms", strconv.Itoa(port)}, strings.NewReader(""), &out, pw)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testkit.WaitListening(t, addr, 10*time.Second)
	// Idle clients: each is dropped with a log line ("client dropped").
	for i := range 30 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("idle client %d was not dropped: %v", i, err)
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("a"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 1)
	if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "a" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	c.Close()
	cancel()
	select {
	case code := <-done:
		if code != exitInterrupted {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("strsvr did not stop")
	}
	if got := out.String(); got != "the final value of v is a\n" {
		t.Fatalf("stdout %q", got)
	}
}

// Watchers have a cap of their own (--max-watchers): strclnt --watch over
// it fails at once with the server's reason, and the watcher within the
// cap carries on.
func TestStrSvrMaxWatchers(t *testing.T) {
	bin := testkit.Binary(t)
	svr, ps := startStrsvr(t, "--max-watchers", "1")
	w, err := sharedstring.Dial(context.Background(), "127.0.0.1", ps, sharedstring.Options{Watch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reply := func(letter, want string) {
		t.Helper()
		w.Write([]byte(letter))
		for {
			kind, v, err := w.Next()
			if err != nil {
				t.Fatal(err)
			}
			if kind == sharedstring.KindReply {
				if string(v) != want {
					t.Fatalf("first watcher's reply %q, want %q", v, want)
				}
				return
			}
		}
	}
	reply("w", "w")
	pr, _ := stdinPipe(t) // open, silent: the watcher does not leave on its own
	over := testkit.Start(t, pr, bin, "strclnt", "--watch", "localhost", ps)
	if code := over.Wait(t, 10*time.Second); code != 1 || !strings.Contains(over.Stderr.String(), "too many watchers: this server serves at most 1 at once") {
		t.Fatalf("watcher over the cap: exit %d, %q", code, over.Stderr.String())
	}
	reply("!", "w!")
	w.Close()
	if code := svr.Wait(t, 10*time.Second); code != 0 || svr.Stdout.String() != "the final value of v is w!\n" {
		t.Fatalf("server exit %d, printed %q", code, svr.Stdout.String())
	}
}

// --help documents the limits a client cannot lift: the caps and their
// defaults.
func TestStrSvrHelpNamesTheCaps(t *testing.T) {
	code, out, errOut := runCmd(t, "", "strsvr", "--help")
	help := out + errOut
	for _, want := range []string{"--max-conns", "(default 1000)", "--max-watchers", "too many watchers"} {
		if !strings.Contains(help, want) {
			t.Errorf("strsvr --help (exit %d) lacks %q", code, want)
		}
	}
	for _, args := range [][]string{
		{"--max-watchers", "0"},
		{"--max-watchers", "1000"},                    // as many as --max-conns' default
		{"--max-conns", "10", "--max-watchers", "10"}, // watchers could hold every slot
	} {
		code, _, errOut := runCmd(t, "", append(append([]string{"strsvr"}, args...), "2000")...)
		if code != 2 || !strings.Contains(errOut, "--max-watchers") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, %q; want 2 and one line naming --max-watchers", args, code, errOut)
		}
	}
}
