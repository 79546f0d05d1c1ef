package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/multicopy"
)

// tmsMaxConns is tms --keep's default cap, lower than the server's own:
// a client may send a 1,000,000-byte message (the tutorial's recv(1000000))
// that is held for the whole transfer, and 1,000 such clients that do not
// read measured 1.74 GB of RSS. At 10,000 they would need 17 GB.
const tmsMaxConns = 1000

// maxCopies is the most --copies may be: that many copies of the longest
// message (multicopy.MaxMessage bytes) still count in an int64.
const maxCopies = math.MaxInt64 / multicopy.MaxMessage

func runTMS(ctx context.Context, std stdio, args []string) (err error) {
	fs := newFlagSet("tms")
	copies := fs.Int64("copies", multicopy.DefaultCopies, "how many copies of the string to send back (tmc expects 10000 unless given the same --copies)")
	noWait := fs.Bool("no-wait", false, "send at once, without waiting for the go-ahead on standard input")
	keep := fs.Bool("keep", false, "serve any number of clients concurrently until SIGINT/SIGTERM (no go-ahead)")
	grace := fs.Duration("grace", 5*time.Second, "how long a transfer in flight may take to finish after a signal (a second signal ends it at once, with a reset)")
	maxConns := fs.Int("max-conns", tmsMaxConns, "with --keep: clients served at once; one more is told \"busy: ...\" at once and closed; each may hold up to about 1.7 MB")
	maxPerAddr := fs.Int("max-conns-per-addr", 0, "with --keep: clients served at once from one address (an IPv6 /64); 0: a quarter of --max-conns, -1: no limit")
	gap := fs.Duration("gap", multicopy.DefaultQuietGap, "silence that ends a string with no newline on a clean link (longer on a lossy or slow one)")
	readTimeout := fs.Duration("read-timeout", multicopy.DefaultReadTimeout, "reset a client whose string is not complete this long after it connects")
	writeTimeout := fs.Duration("write-timeout", multicopy.DefaultWriteIdle, "drop a client that reads nothing for this long")
	logFormat := fs.String("log-format", "text", "log format on standard error: text or json")
	asJSON := addJSONFlag(fs)
	port, err := fs.parseServerPort(std, args)
	if err != nil {
		return err
	}
	if *copies < 1 {
		return usagef("--copies must be at least 1, not %d", *copies)
	}
	if *copies > maxCopies {
		return usagef("--copies must be at most %d, not %d: the copies of a message of up to %d bytes must add up to fewer than 2^63 bytes", maxCopies, *copies, multicopy.MaxMessage)
	}
	if *maxConns < 1 {
		return usagef("--max-conns must be at least 1, not %d", *maxConns)
	}
	if *maxPerAddr < -1 {
		return usagef("--max-conns-per-addr must be -1 (no limit), 0 (a quarter of --max-conns) or more, not %d", *maxPerAddr)
	}
	// Standard output and error must never hold a handler up, nor stop
	// the server when nobody reads them (see server.Output).
	stdout, stderr := server.NewOutput(std.out), server.NewOutput(std.err)
	defer closeServerOutput(stdout, stderr)
	sout := serverOut{w: stdout, json: *asJSON}
	out := sout.clientLog()
	logOut := stderr
	log, err := newLogger(logOut, *logFormat)
	if err != nil {
		return err
	}
	ln, err := port.ListenForRequests(ctx)
	if err != nil {
		return err
	}
	log.Info("tms listening", "addr", ln.Addr().String())
	sout.listening("tms", port, ln, "copies", *copies, "keep", *keep)
	defer func() { flushLogs(log); sout.end(ctx, err) }() // the log limit's counts come before the end
	srv := &multicopy.Server{
		Copies:      *copies,
		QuietGap:    *gap,
		ReadTimeout: *readTimeout,
		WriteIdle:   *writeTimeout,
		Grace:       *grace,
		Logger:      log,
	}

	if *keep {
		// Many clients: their lines are under the log limit. A full tms
		// refuses newcomers rather than make room (server.Server's
		// EvictWaiting): a string may take seconds to arrive on a slow or
		// lossy link, and its sender would be closed mid-string for a
		// newcomer (docs/reliability.md).
		srv.ClientLog = limitedLines(log, out, "client is at", stdout)
		s := &server.Server{Handler: srv, MaxConns: *maxConns, MaxConnsPerAddr: *maxPerAddr, Refuse: server.RefuseLine, Grace: *grace, Hurry: std.hurry, Logger: log, UserTimeout: srv.UserTimeout()}
		return s.Run(ctx, ln)
	}

	// One client, as tms.py: accept, then stop listening.
	srv.ClientLog = out
	if !*noWait {
		srv.GoAhead = func(ctx context.Context, msg []byte) error {
			fmt.Fprintf(stderr, "tcplab tms: got %d bytes; press Enter to send them back %d times\n", len(msg), *copies)
			return waitForLine(ctx, std.in)
		}
	}
	if _, err := srv.ServeOne(ctx, ln, std.hurry); err != nil && ctx.Err() == nil {
		return err
	}
	return nil // a signal sets the exit status
}

// waitForLine returns when a line (or end of input) arrives on in, or when
// ctx ends. The reading goroutine may outlive a cancelled call: a blocked
// read of standard input cannot be interrupted, and the process is exiting.
func waitForLine(ctx context.Context, in io.Reader) error {
	done := make(chan struct{})
	go func() {
		bufio.NewReader(in).ReadString('\n')
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
