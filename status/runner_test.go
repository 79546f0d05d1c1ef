package status

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// countingCommand is a native command that counts its runs and takes d.
func countingCommand(runs *atomic.Int64, d time.Duration) *Command {
	return &Command{name: "count", native: func() ([]byte, error) {
		runs.Add(1)
		time.Sleep(d) // the run's duration (fake time in a bubble)
		return []byte("one\ntwo\n"), nil
	}}
}

// Fifty requests at once while a run is in flight share it: in a bubble
// every request has joined before the run's 200 ms pass, so the command
// runs exactly once.
func TestRunnerCoalescesConcurrentRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		var shared atomic.Int64
		r := &Runner{Fresh: -1, OnRun: func(_ string, s bool) {
			if s {
				shared.Add(1)
			}
		}}
		c := countingCommand(&runs, 200*time.Millisecond)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				out, err := r.Output(context.Background(), c)
				if err != nil || string(out) != "one\ntwo\n" {
					t.Errorf("got %q, %v", out, err)
				}
			})
		}
		wg.Wait()
		if n := runs.Load(); n != 1 {
			t.Errorf("50 concurrent requests ran the command %d times", n)
		}
		if n := shared.Load(); n+runs.Load() != 50 {
			t.Errorf("shared %d + ran %d != 50", n, runs.Load())
		}
		// Fresh < 0: a finished run is not reused.
		r.Output(context.Background(), c)
		if n := runs.Load(); n != 2 {
			t.Errorf("a later request reused a finished run with Fresh < 0 (%d runs)", n)
		}
	})
}

// A finished run is reused until Fresh has passed since it ended, and
// not after: in a bubble the window's edge is exact.
func TestRunnerFreshnessWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     *Runner
		fresh time.Duration // 0: no reuse
	}{
		{"Fresh 300ms", &Runner{Fresh: 300 * time.Millisecond}, 300 * time.Millisecond},
		{"zero value", &Runner{}, DefaultFresh},
		{"negative Fresh", &Runner{Fresh: -1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var runs atomic.Int64
				c := countingCommand(&runs, 10*time.Millisecond)
				tc.r.Output(context.Background(), c)
				want := int64(1)
				if tc.fresh > 0 {
					time.Sleep(tc.fresh - time.Nanosecond) // fake time: to the window's last instant
					tc.r.Output(context.Background(), c)
				} else {
					want = 2
					tc.r.Output(context.Background(), c)
				}
				if n := runs.Load(); n != want {
					t.Fatalf("a request within the window: %d runs in all, want %d", n, want)
				}
				if tc.fresh > 0 {
					time.Sleep(time.Nanosecond) // fake time: the window is over
					tc.r.Output(context.Background(), c)
					if n := runs.Load(); n != 2 {
						t.Fatalf("a request after the window: %d runs in all, want 2", n)
					}
				}
			})
		})
	}
}

// A waiter whose context ends leaves with its error; the run it waited on
// goes on and serves the others.
func TestRunnerWaiterLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		r := &Runner{}
		c := countingCommand(&runs, 300*time.Millisecond)
		go r.Output(context.Background(), c)
		synctest.Wait() // the run is in flight
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := r.Output(ctx, c); err == nil {
			t.Fatal("a waiter whose context ended got no error")
		}
		out, err := r.Output(context.Background(), c) // the run went on for the others
		if err != nil || string(out) != "one\ntwo\n" || runs.Load() != 1 {
			t.Fatalf("got %q, %v after %d runs", out, err, runs.Load())
		}
	})
}

func execCommand(t *testing.T, argv ...string) *Command {
	t.Helper()
	p := lookPath(argv[0])
	if p == "" {
		t.Fatalf("%s not found in %s", argv[0], FixedPath)
	}
	return &Command{name: argv[0], argv: argv, path: p}
}

// The environment of a run is fixedEnv exactly, whatever the server's.
func TestRunnerFixedEnvironment(t *testing.T) {
	t.Setenv("LD_PRELOAD", "/nonexistent.so")
	t.Setenv("TCPLAB_SECRET", "leak")
	out, err := (&Runner{}).Output(context.Background(), execCommand(t, "env"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Fields(string(out)), fixedEnv; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("env in a run: %q, want %q", got, want)
	}
}

func TestRunnerTimeout(t *testing.T) {
	start := time.Now()
	_, err := (&Runner{Timeout: 200 * time.Millisecond}).Output(context.Background(), execCommand(t, "sleep", "30"))
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("a 200ms timeout took %s", time.Since(start))
	}
}

func TestRunnerOutputCap(t *testing.T) {
	out, err := (&Runner{MaxOutput: 1000}).Output(context.Background(), execCommand(t, "seq", "1000000"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 1000 || len(out) < 900 || !strings.HasSuffix(string(out), "\n") {
		t.Fatalf("capped output is %d bytes, ends %q", len(out), out[max(0, len(out)-10):])
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if lines[len(lines)-1] != strconv.Itoa(len(lines)) {
		t.Fatalf("last line %q is not whole", lines[len(lines)-1])
	}
}

func TestRunnerFailure(t *testing.T) {
	_, err := (&Runner{}).Output(context.Background(), execCommand(t, "false"))
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("err %v", err)
	}
}

// The runner's only input is an allow-list entry; whatever the client sent
// is never part of what runs. A name with shell syntax is refused before a
// runner is involved, and no shell ever sees it (the file is never made).
func TestShellSyntaxNeverRuns(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "x")
	al := mustAllow(t, BuiltinNames()...)
	for _, name := range []string{
		"w;touch " + marker, "ps;touch " + marker, "w\n;touch " + marker, "$(touch " + marker + ")",
		"`touch " + marker + "`", "w|touch " + marker, "w&&touch " + marker, "touch " + marker,
	} {
		req := parseRequest([]byte(name), al)
		if req.Command != nil {
			out, err := (&Runner{}).Output(context.Background(), req.Command)
			if err != nil {
				t.Fatalf("%q: %v", name, err)
			}
			if strings.Contains(string(out), "touch") && req.Command.name != "ps" && req.Command.name != "json" {
				t.Errorf("%q: output mentions touch", name)
			}
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a client's name made a shell run touch")
	}
}

// A command whose run panics answers with an error, and the requests after
// it are not left waiting on the call that never finished.
func TestRunnerSurvivesAPanickingRun(t *testing.T) {
	var runs atomic.Int64
	c := &Command{name: "boom", native: func() ([]byte, error) {
		runs.Add(1)
		panic("corrupt /proc line")
	}}
	r := &Runner{Fresh: -1}
	for i := range 2 {
		done := make(chan error, 1)
		go func() {
			_, err := r.Output(context.Background(), c)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "internal error") {
				t.Fatalf("request %d: err = %v, want an internal error", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d still waiting after a run panicked", i)
		}
	}
	if runs.Load() != 2 {
		t.Fatalf("%d runs, want a fresh run for each request after a failure", runs.Load())
	}
}
