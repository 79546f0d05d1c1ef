// Package testkit is what tcplab's tests share: the built binary for
// end-to-end tests, the Python 3 peers, and a leak check.
package testkit

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tcplab/tcplab/internal/procout"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

// Main runs a package's tests, fails them if goroutines are left behind,
// and removes the binary that Binary built.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds ./cmd/tcplab once per test process (with the race detector
// when the tests run with it) and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "tcplab-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "tcplab")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/tcplab")...)
		cmd.Dir = Root()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// Python3 returns the python3 interpreter; scripts/test.sh installs it.
func Python3(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		tb.Fatal("python3 not found: run the tests with scripts/test.sh, which installs it")
	}
	return p
}

// Testdata returns the path of a file under the repository's testdata/.
func Testdata(name string) string { return filepath.Join(Root(), "testdata", name) }

// Proc is a process started by Start, its output captured.
type Proc struct {
	Cmd    *exec.Cmd
	Stdout *SafeBuffer
	Stderr *SafeBuffer
	done   chan struct{}
	err    error
}

// outputGrace is how long Wait waits, after the process has exited, for
// the end of its output when another process still holds its pipes.
const outputGrace = 30 * time.Second

// Start starts name with args and stdin, and stops it (SIGKILL) when the test
// ends if it is still running.
func Start(tb testing.TB, stdin io.Reader, name string, args ...string) *Proc {
	tb.Helper()
	return StartEnv(tb, nil, stdin, name, args...)
}

// StartEnv is Start with the environment env (nil: the test's own).
func StartEnv(tb testing.TB, env []string, stdin io.Reader, name string, args ...string) *Proc {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	return StartCmd(tb, cmd)
}

// StartCmd is Start for a command set up by the caller (its environment,
// extra files), whose output it captures.
func StartCmd(tb testing.TB, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p := &Proc{Cmd: cmd, Stdout: &SafeBuffer{}, Stderr: &SafeBuffer{}, done: make(chan struct{})}
	// The output goes through pipes of our own, read to their end: exec's
	// copies of an io.Writer obey WaitDelay, which would cut them short.
	var copies sync.WaitGroup
	var readEnds []*os.File
	capture := func(to *SafeBuffer) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			tb.Fatal(err)
		}
		readEnds = append(readEnds, r)
		copies.Go(func() { io.Copy(to, r) })
		return w
	}
	cmd.Stdout, cmd.Stderr = capture(p.Stdout), capture(p.Stderr)
	// The child has its own copies once started (or never will).
	defer cmd.Stdout.(*os.File).Close()
	defer cmd.Stderr.(*os.File).Close()
	// A stdin that is never closed (an io.Pipe the test writes to) must not
	// keep Wait from returning once the process has exited.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		for _, r := range readEnds {
			r.Close()
		}
		tb.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		// The output ends when every process holding the pipes has
		// exited: the command's children may write after it. A child
		// that holds them for good (a daemon) gets outputGrace, then its
		// output is cut.
		copied := make(chan struct{})
		go func() { copies.Wait(); close(copied) }()
		select {
		case <-copied:
		case <-time.After(outputGrace):
			for _, r := range readEnds {
				r.Close()
			}
			<-copied
		}
		for _, r := range readEnds {
			r.Close()
		}
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Wait waits for the process to exit within d and returns its exit code
// (-1 if it was killed by a signal); it fails the test on timeout.
func (p *Proc) Wait(tb testing.TB, d time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.Cmd.Process.Kill()
		<-p.done
		tb.Fatalf("%s did not exit within %s; stdout %q stderr %q", p.Cmd.Path, d, p.Stdout.String(), p.Stderr.String())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// WaitFor waits until the process's stdout or stderr contains s.
func (p *Proc) WaitFor(tb testing.TB, s string, d time.Duration) {
	tb.Helper()
	if !WaitWritten(d, p.done, func(out string) bool { return strings.Contains(out, s) }, p.Stdout, p.Stderr) {
		tb.Fatalf("no %q within %s; stdout %q stderr %q", s, d, p.Stdout.String(), p.Stderr.String())
	}
}

// SafeBuffer is a bytes.Buffer safe for one writer and concurrent readers,
// who may wait for its next write (Changed) instead of polling it: an
// internal/procout Buffer, which programs that are not tests use too.
type SafeBuffer = procout.Buffer

// WaitWritten waits until cond holds for what one of bufs holds, woken by
// each write to them (procout.WaitWritten).
func WaitWritten(d time.Duration, done <-chan struct{}, cond func(text string) bool, bufs ...*SafeBuffer) bool {
	return procout.WaitWritten(d, done, cond, bufs...)
}

// ListeningPortIn returns the port in a tcplab server's "listening" log
// line within out, or "" if there is none yet (procout.ListeningPortIn).
func ListeningPortIn(out string) string { return procout.ListeningPortIn(out) }

// ListenAddr waits until the process, a tcplab server started with port
// 0, logs where it listens, and returns that address on 127.0.0.1: the
// port the kernel chose, read back instead of guessed beforehand.
func (p *Proc) ListenAddr(tb testing.TB, d time.Duration) string {
	tb.Helper()
	var port string
	if !WaitWritten(d, p.done, func(out string) bool { port = ListeningPortIn(out); return port != "" }, p.Stderr, p.Stdout) {
		tb.Fatalf("no listening address logged within %s; stdout %q stderr %q", d, p.Stdout.String(), p.Stderr.String())
	}
	return "127.0.0.1:" + port
}

// WaitListening waits until something accepts connections on addr.
func WaitListening(tb testing.TB, addr string, d time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("nothing listening on %s within %s", addr, d)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Poll calls cond every few milliseconds until it reports true or d has
// passed, and says which. It is only for state outside the test process
// that gives no event to wait on: the kernel's socket table for a server
// whose log goes nowhere, another process's metrics page, a count kept in
// Redis. Output has one (WaitWritten), a Server's connections have one
// (its ConnState hook), and so has anything the test itself counts.
func Poll(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// AppendersGiveUp runs 50 goroutines that each call appendLetter in a loop
// until, once every one has appended a few letters, their context is
// cancelled; it returns when all have returned. Their last appends are
// then in flight, given up on by their callers: what a store's Flush must
// still wait for before strsvr prints v.
func AppendersGiveUp(appendLetter func(ctx context.Context, letter byte)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	started := make(chan struct{}, 50)
	for i := range 50 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				appendLetter(ctx, byte('a'+i%26))
				if n == 5 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 50 {
		<-started
	}
	cancel()
	wg.Wait()
}

// Gauge is a count that goes up and down (a server's connections, told by
// a hook), which a test waits on instead of polling: each Add wakes the
// waiters. The zero value is a gauge at 0.
type Gauge struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed at the next Add
}

// Add adds d to the gauge and wakes its waiters.
func (g *Gauge) Add(d int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n += d
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// Load returns the gauge's value.
func (g *Gauge) Load() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// Wait waits up to d until cond holds for the gauge's value, woken by
// each Add, and reports whether it did.
func (g *Gauge) Wait(d time.Duration, cond func(n int) bool) bool {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		g.mu.Lock()
		n := g.n
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		changed := g.changed
		g.mu.Unlock()
		if cond(n) {
			return true
		}
		select {
		case <-changed:
		case <-timeout.C:
			return cond(g.Load())
		}
	}
}

// OpenFDs counts the process's open descriptors (/proc/self/fd), for a
// test that checks a server leaves none behind; it skips the test where
// there is no /proc.
func OpenFDs(t testing.TB) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(des)
}
