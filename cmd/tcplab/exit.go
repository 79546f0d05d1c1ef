package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/tcplab/tcplab/internal/safetext"
)

// Exit statuses, the same for every command (README, "Errors"):
//
//	0    done: what was asked was done (or --help was printed)
//	1    failed: one line on standard error says why
//	2    usage: a bad flag, argument or value; the line names it
//	130  interrupted by SIGINT (Ctrl-C)
//	141  a client's standard output was closed (head -1): it stopped quietly
//	143  stopped by SIGTERM
//
// 130, 141 and 143 are 128 + the signal's number: what a shell reports for
// a program the signal killed, so "$?" and "set -o pipefail" read tcplab
// as they read every other tool. Servers stopped by a signal still end
// cleanly first (they stop accepting, let work in flight finish within
// --grace, strsvr prints the final v) but exit 130 or 143, not 0: the
// stop was asked for, and the status says by which signal, so a script can
// tell "the server finished" (strsvr's last client left: 0) from "it was
// stopped". A systemd unit should list SuccessExitStatus=143.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 128 + int(syscall.SIGINT)  // 130
	exitStdoutGone  = 128 + int(syscall.SIGPIPE) // 141
	exitTerminated  = 128 + int(syscall.SIGTERM) // 143
)

// stopSignal is the cause of a command's context when a signal stops it.
type stopSignal struct{ sig syscall.Signal }

func (s stopSignal) Error() string { return "stopped by " + signalName(s.sig) }

// Is makes a stop by signal read as a cancellation to code that checks for
// context.Canceled.
func (s stopSignal) Is(target error) bool { return target == context.Canceled }

func (s stopSignal) exitCode() int { return 128 + int(s.sig) }

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// errStdoutClosed is the cause of a client's context when its standard
// output stopped taking bytes (EPIPE: "tcplab wps ... | head -1").
var errStdoutClosed = errors.New("standard output closed")

// notifySignals returns a context that ends, with a stopSignal as its
// cause, at the first SIGINT or SIGTERM. A second one closes hurry: a
// server draining its work within --grace then closes what is left at
// once (Ctrl-C twice: stop now; server.Server's Hurry).
//
// It also catches SIGPIPE, so a write to a closed standard output or
// error returns EPIPE instead of killing the process (the Go runtime's
// default for file descriptors 1 and 2): servers drop such lines and keep
// serving, clients stop quietly. Catching, not ignoring, SIGPIPE keeps the
// default for the programs svr runs: a caught signal is reset at exec, an
// ignored one is inherited.
func notifySignals(parent context.Context) (ctx context.Context, hurry <-chan struct{}, stop func()) {
	urgent := make(chan struct{})
	var hurried sync.Once
	hurryNow := func() { hurried.Do(func() { close(urgent) }) }
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if ctx.Err() != nil {
					hurryNow()
				}
				cancel(stopSignal{s.(syscall.Signal)})
			case <-pipes:
				// EPIPE is handled where the write failed.
			case <-done:
				return
			}
		}
	}()
	return ctx, urgent, func() {
		signal.Stop(sigs)
		signal.Stop(pipes)
		close(done)
		cancel(nil)
		hurryNow()
	}
}

// exitCode maps a command's outcome to the exit status, and prints the one
// line a failure gets. A usage error always wins: the command did not start.
// A failure that must not be hidden (lostOutput: strsvr's final v went
// nowhere, or its store did not keep it) is reported even after a signal. Otherwise a command that ended
// because its context did (a signal, its standard output closed) exits
// quietly with that status: whatever error it returned on the way out
// ("use of closed network connection", "context canceled") is a
// consequence of the stop, not news.
func exitCode(ctx context.Context, name string, err error, stderr io.Writer) int {
	var uerr usageError
	var lost lostOutput
	var help helpNotPrinted
	switch {
	case err != nil && errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &help):
		return printedStatus("tcplab "+name, help.err, stderr)
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "tcplab %s: %s (see 'tcplab %s --help')\n", name, safetext.OneLine(uerr.msg), name)
		return exitUsage
	case errors.As(err, &lost):
		fmt.Fprintf(stderr, "tcplab %s: %s\n", name, safetext.OneLine(err.Error()))
		return exitFailed
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		var sig stopSignal
		switch {
		case errors.As(cause, &sig):
			return sig.exitCode()
		case errors.Is(cause, errStdoutClosed):
			return exitStdoutGone
		}
		return exitInterrupted // a caller's plain cancel: tests, or an embedding
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcplab %s: %s\n", name, safetext.OneLine(err.Error()))
		return exitFailed
	}
	return exitOK
}

// lostOutput marks a failure to deliver or keep a command's result
// (strsvr's final v not printed, or not kept by its store), reported with
// exit 1 even when a signal caused the stop.
type lostOutput struct{ err error }

func (e lostOutput) Error() string { return e.err.Error() }
func (e lostOutput) Unwrap() error { return e.err }

// clientStdout is a client's standard output: when a write fails because
// nobody reads any more (EPIPE, as "| head -1" causes), it ends the
// command's context with errStdoutClosed, so the client stops at once, as
// it would have died of SIGPIPE, and exits 141 without a message. Other
// write errors (a full disk) are returned to the caller.
type clientStdout struct {
	w      io.Writer
	cancel context.CancelCauseFunc
	once   sync.Once
}

func (o *clientStdout) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil && errors.Is(err, syscall.EPIPE) {
		o.once.Do(func() { o.cancel(errStdoutClosed) })
		return n, fmt.Errorf("%w: %w", errStdoutClosed, err)
	}
	return n, err
}

// file is the *os.File beneath, if any, for terminal checks.
func (o *clientStdout) file() *os.File {
	f, _ := o.w.(*os.File)
	return f
}

// serverCommands are the commands whose standard output closing must not
// stop them: they drop the lines (see server.Output) and keep serving.
var serverCommands = map[string]bool{"tms": true, "svr": true, "strsvr": true}

// helpNotPrinted is a command's --help that could not be written.
type helpNotPrinted struct{ err error }

func (e helpNotPrinted) Error() string { return e.err.Error() }
func (e helpNotPrinted) Unwrap() error { return e.err }

// printedStatus is the status of printing help or the version, whose
// write failed with err (nil: it did not): 0; 141 and nothing said if
// nobody reads (tcplab help | true), as a client's output; else 1 with
// one line (a full disk).
func printedStatus(prefix string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, syscall.EPIPE):
		return exitStdoutGone
	}
	fmt.Fprintf(stderr, "%s: %s\n", prefix, safetext.OneLine(err.Error()))
	return exitFailed
}
