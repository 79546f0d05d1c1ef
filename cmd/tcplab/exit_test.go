package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"syscall"
	"testing"
)

// The one convention, in-process: which status each ending gets, and
// that only a failure (or a usage error) prints its line.
func TestExitCodeConvention(t *testing.T) {
	stopped := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		return ctx
	}
	live := context.Background()
	boom := errors.New("boom")
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		code int
		line string
	}{
		{"done", live, nil, exitOK, ""},
		{"help", live, flag.ErrHelp, exitOK, ""},
		{"failed", live, boom, exitFailed, "tcplab x: boom\n"},
		{"usage", live, usagef("--n must be 1"), exitUsage, "tcplab x: --n must be 1 (see 'tcplab x --help')\n"},
		{"usage wins over a signal", stopped(stopSignal{syscall.SIGINT}), usagef("bad"), exitUsage, "tcplab x: bad (see 'tcplab x --help')\n"},
		{"SIGINT", stopped(stopSignal{syscall.SIGINT}), context.Canceled, exitInterrupted, ""},
		{"SIGTERM", stopped(stopSignal{syscall.SIGTERM}), nil, exitTerminated, ""},
		{"SIGTERM hides the error it caused", stopped(stopSignal{syscall.SIGTERM}), boom, exitTerminated, ""},
		{"stdout closed", stopped(errStdoutClosed), boom, exitStdoutGone, ""},
		{"a lost result is a failure even after a signal", stopped(stopSignal{syscall.SIGTERM}), lostOutput{boom}, exitFailed, "tcplab x: boom\n"},
		{"a caller's cancel", stopped(nil), nil, exitInterrupted, ""},
	}
	for _, c := range cases {
		var errOut bytes.Buffer
		if code := exitCode(c.ctx, "x", c.err, &errOut); code != c.code || errOut.String() != c.line {
			t.Errorf("%s: exit %d, %q; want %d, %q", c.name, code, errOut.String(), c.code, c.line)
		}
	}
}
