package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tcplab/tcplab/internal/server"
)

// Defaults for a Runner's zero fields.
const (
	DefaultRunTimeout = 5 * time.Second
	DefaultMaxOutput  = 1 << 20
	DefaultFresh      = time.Second
)

// fixedEnv is the whole environment of every run: the server's own
// environment is not passed on, so nothing set around the server (or, in the
// tutorial's design, by a client) changes what w or ps do. LC_ALL=C keeps
// the output in the same columns a native rendering uses; TZ is not set, so
// times are the machine's local time as the tools print them for a login.
var fixedEnv = []string{"PATH=" + FixedPath, "LC_ALL=C", "LANG=C", "HOME=/", "TERM=dumb"}

// Runner runs allow-listed commands and coalesces concurrent identical
// requests: while one run of a command is in flight, other requests for it
// wait for that run (singleflight); a finished run's output is reused for
// Fresh. A burst of a thousand clients asking for ps therefore costs one
// fork, not a thousand. The zero value is ready to use with the defaults.
type Runner struct {
	// Timeout bounds each run; the process is killed after it. Zero means
	// DefaultRunTimeout.
	Timeout time.Duration
	// MaxOutput caps the bytes kept from a run's standard output; the rest
	// is read and discarded, and the output is cut at its last whole line.
	// Zero means DefaultMaxOutput.
	MaxOutput int
	// Fresh is how long a finished run's output is served again. Zero means
	// DefaultFresh; negative means no reuse: every request after a run has
	// finished runs the command again (concurrent requests still share a
	// run).
	Fresh time.Duration
	// OnRun, if set, is called once for each run with shared false, and
	// once for each request that got another's output (a run in flight or
	// a fresh one) with shared true.
	OnRun func(name string, shared bool)

	flight singleflight.Group
	mu     sync.Mutex
	last   map[string]finished // the last good run of each command
}

// finished is a run's output and when the run ended.
type finished struct {
	out []byte
	at  time.Time
}

// Output returns the output of c, running it or sharing a run in flight or
// a fresh one. ctx bounds only the wait: a run that others share is not
// cancelled when one waiter leaves. The returned slice is shared and must
// not be modified.
func (r *Runner) Output(ctx context.Context, c *Command) ([]byte, error) {
	if c == nil {
		return nil, errors.New("status: nil command")
	}
	if out, ok := r.fresh(c.name); ok {
		r.report(c.name, true)
		return out, nil
	}
	ran := false // set by the run, if it is this request's
	ch := r.flight.DoChan(c.name, func() (any, error) {
		// A run may have ended between the look above and this flight:
		// its output is fresh, and the command is not run again.
		if out, ok := r.fresh(c.name); ok {
			return out, nil
		}
		ran = true
		out, err := r.runRecovering(c)
		if err == nil {
			r.mu.Lock()
			if r.last == nil {
				r.last = make(map[string]finished)
			}
			r.last[c.name] = finished{out, time.Now()}
			r.mu.Unlock()
		}
		r.report(c.name, false)
		return out, err
	})
	select {
	case res := <-ch:
		if !ran {
			r.report(c.name, true)
		}
		out, _ := res.Val.([]byte)
		return out, res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fresh returns the output of name's last run if it is to be reused.
func (r *Runner) fresh(name string) ([]byte, bool) {
	window := r.Fresh
	if window == 0 {
		window = DefaultFresh
	}
	if window < 0 {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.last[name]
	if !ok || time.Since(f.at) >= window {
		return nil, false
	}
	return f.out, true
}

func (r *Runner) report(name string, shared bool) {
	if r.OnRun != nil {
		r.OnRun(name, shared)
	}
}

// runRecovering is run with a panic turned into an error: the requests
// waiting for this call must be released whatever happens, or every later
// request for the command would wait on it until the server stops.
func (r *Runner) runRecovering(c *Command) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%s: internal error: %v", c.name, p)
		}
	}()
	return r.run(c)
}

// run produces c's output once: the program with its fixed argv and
// environment, or the native renderer when the program is not installed.
func (r *Runner) run(c *Command) ([]byte, error) {
	if c.path == "" {
		if c.native == nil {
			return nil, fmt.Errorf("%s: not available", c.name)
		}
		out, err := c.native()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		if c.whole && len(out) > r.maxOutput() {
			return nil, fmt.Errorf("%s: output of %d bytes is over the %d-byte cap", c.name, len(out), r.maxOutput())
		}
		return r.capOutput(out), nil
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultRunTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// argv comes only from the built-in table: exec runs the program
	// directly (execve), with no shell to interpret anything.
	cmd := exec.CommandContext(ctx, c.path, c.argv[1:]...)
	cmd.Env = fixedEnv
	cmd.Dir = "/"
	cmd.WaitDelay = time.Second
	stdout := &capWriter{max: r.maxOutput()}
	stderr := &capWriter{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: timed out after %s", c.name, timeout)
	}
	if err != nil && stdout.buf.Len() == 0 {
		msg := strings.TrimSpace(stderr.buf.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg != "" {
			return nil, fmt.Errorf("%s: %v: %s", c.name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return r.capOutput(stdout.buf.Bytes()), nil
}

// Validate names the first field of r that is out of range. A run is
// always bounded: Timeout and MaxOutput cannot be none.
func (r *Runner) Validate() error {
	switch {
	case r.Timeout < 0:
		return server.Invalid("{Timeout} must be positive, not %s", r.Timeout)
	case r.MaxOutput < 0:
		return server.Invalid("{MaxOutput} must be at least 1, not %d", r.MaxOutput)
	}
	return nil
}

func (r *Runner) maxOutput() int {
	if r.MaxOutput <= 0 {
		return DefaultMaxOutput
	}
	return r.MaxOutput
}

// capOutput keeps at most MaxOutput bytes, cut after the last whole line,
// and makes sure the output ends with a newline.
func (r *Runner) capOutput(out []byte) []byte {
	if max := r.maxOutput(); len(out) > max {
		out = out[:max]
		if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
			out = out[:i+1]
		}
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

// capWriter keeps the first max bytes written and discards the rest while
// still reporting success, so the program is never blocked on a full pipe.
type capWriter struct {
	buf bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.max + 1 - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
