package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"strings"
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

// fullWriter fails every write as /dev/full does.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}
}

// Help and the version that go nowhere (a full disk) are a failure, as
// any other output is: they exited 0 with nothing printed, so
// "tcplab --version > VERSION" on a full disk left an empty file quietly.
func TestHelpAndVersionOnAFullDiskFail(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--version"}, {"tmc", "--help"}, {"tms", "-h"}, {"help", "wps"}} {
		var errOut strings.Builder
		code := run(context.Background(), args, strings.NewReader(""), fullWriter{}, &errOut)
		line := strings.TrimSuffix(errOut.String(), "\n")
		if code != exitFailed || strings.Contains(line, "\n") || !strings.HasSuffix(line, "no space left on device") {
			t.Errorf("%q: exit %d, stderr %q; want 1 and one line", args, code, errOut.String())
		}
	}
}

// pipeWriter fails every write as a pipe nobody reads does.
type pipeWriter struct{}

func (pipeWriter) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.EPIPE}
}

// Help and the version into a closed pipe ("tcplab help | true") end
// quietly with 141, as every client's output does.
func TestHelpAndVersionIntoAClosedPipeExitQuietly(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--version"}, {"tmc", "--help"}, {"tms", "-h"}, {"help", "strsvr"}} {
		var errOut strings.Builder
		code := run(context.Background(), args, strings.NewReader(""), pipeWriter{}, &errOut)
		if code != exitStdoutGone || errOut.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q; want 141 and nothing", args, code, errOut.String())
		}
	}
}
