package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
)

func runStrSvr(ctx context.Context, std stdio, args []string) (err error) {
	fs := newFlagSet("strsvr")
	keep := fs.Bool("keep", false, "keep serving when the last client leaves (stop with SIGINT/SIGTERM)")
	waitFor := fs.Int("clients", 0, "serve nobody until this many clients have connected (the tutorial's nc = 2)")
	var where storePlace
	fs.StringVar(&where.data, "data", "", "keep v in this append-only log file, recovered on restart")
	fs.StringVar(&where.fsync, "fsync", "always", "with --data: when to fsync the log: always or interval")
	fs.DurationVar(&where.fsyncEvery, "fsync-interval", time.Second, "with --fsync interval: time between fsyncs")
	fs.StringVar(&where.url, "store", "", "keep v in Redis, shared by every strsvr on the same `URL`: redis://HOST:PORT/DB?key=NAME (rediss:// for TLS); the password is taken from $REDISCLI_AUTH (a password in the URL would show in ps)")
	maxConns := fs.Int("max-conns", sharedstring.DefaultMaxConns, "clients served at once, watchers included; one more is refused at once")
	maxPerAddr := fs.Int("max-conns-per-addr", 0, "clients served at once from one address (an IPv6 /64); 0: a quarter of --max-conns (at least --clients), -1: no limit")
	maxWatchers := fs.Int("max-watchers", 0, "watchers (strclnt --watch) served at once, fewer than --max-conns; one more is refused and closed (default a quarter of --max-conns)")
	maxValue := fs.Int("max-value", sharedstring.DefaultMaxValue, "largest v in bytes; a client that would grow v beyond it is dropped")
	writeTimeout := fs.Duration("write-timeout", sharedstring.DefaultWriteIdle, "reset a client that accepts no reply bytes for this long")
	readTimeout := fs.Duration("read-timeout", sharedstring.DefaultReadIdle, "drop a client that sends nothing for this long (not watchers; 0: never)")
	noDiscovery := fs.Bool("no-discovery", false, "do not answer the UDP probe: every client is classic")
	logFormat := fs.String("log-format", "text", "log format on standard error: text or json")
	asJSON := addJSONFlag(fs)
	repair := fs.String("repair", "", "repair the data `FILE` (--data) and exit: keep a copy, drop only damaged bytes, say what was dropped")
	port, err := strsvrPort(fs, std, args, repair)
	if err != nil {
		return err
	}
	if *repair != "" {
		return repairLog(ctx, std, *repair)
	}
	switch {
	case *waitFor < 0:
		return usagef("--clients must be at least 0, not %d", *waitFor)
	case *maxConns < 1:
		return usagef("--max-conns must be at least 1, not %d", *maxConns)
	case *waitFor > *maxConns:
		return usagef("--clients (%d) must not exceed --max-conns (%d): the gathering could never be complete", *waitFor, *maxConns)
	case *maxPerAddr < -1:
		return usagef("--max-conns-per-addr must be -1 (no limit), 0 (a quarter of --max-conns) or more, not %d", *maxPerAddr)
	case fs.isSet("max-watchers") && *maxWatchers < 1:
		return usagef("--max-watchers must be at least 1, not %d", *maxWatchers)
	case fs.isSet("max-watchers") && *maxWatchers >= *maxConns:
		return usagef("--max-watchers (%d) must be below --max-conns (%d): watchers never time out, so they could hold every slot", *maxWatchers, *maxConns)
	case *maxValue < 1:
		return usagef("--max-value must be at least 1, not %d", *maxValue)
	case *writeTimeout <= 0:
		return usagef("--write-timeout must be positive, not %s", *writeTimeout)
	case *readTimeout < 0:
		return usagef("--read-timeout must not be negative, not %s", *readTimeout)
	}
	if err := where.checkFsync(); err != nil {
		return err
	}
	// Many clients at once: a standard error that nobody reads must never
	// hold a handler up (see server.Output). The final value of v still goes
	// to standard output directly, whole, at exit.
	errOut := server.NewOutput(std.err)
	defer func() {
		if n := errOut.Dropped(); n > 0 {
			fmt.Fprintf(errOut, "tcplab: %d lines of output were dropped: standard error was not being read\n", n)
		}
		errOut.Close()
	}()
	log, err := newLogger(errOut, *logFormat)
	if err != nil {
		return err
	}
	if err := where.checkPlace(); err != nil {
		return err
	}
	st, err := where.open(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkRecovered(ctx, log, st, *maxValue, where.name()); err != nil {
		return err
	}
	ln, err := port.Listen(ctx)
	if err != nil {
		return err
	}
	var pc net.PacketConn
	if !*noDiscovery {
		if pc, err = port.ListenDatagram(ln.Addr().(*net.TCPAddr).Port); err != nil {
			log.Warn("no framed-mode discovery: every client will be classic", "err", endpoint.Cause(err))
		}
	}
	// v goes to standard output directly, whole, at exit: no queue.
	sout := serverOut{w: std.out, json: *asJSON}
	sout.listening("strsvr", port, ln, "discovery", pc != nil, "store", where.name())
	defer func() {
		if _, lost := err.(lostOutput); !lost {
			sout.end(ctx, err)
		}
	}()
	srv := &sharedstring.Server{
		Store:           st,
		WaitFor:         *waitFor,
		Keep:            *keep,
		WriteIdle:       *writeTimeout,
		ReadIdle:        *readTimeout,
		MaxValue:        *maxValue,
		MaxConns:        *maxConns,
		MaxConnsPerAddr: *maxPerAddr,
		MaxWatchers:     *maxWatchers,
		Logger:          log,
	}
	v, runErr := srv.Run(ctx, ln, pc)
	var lost *sharedstring.FinalValueError
	if errors.As(runErr, &lost) {
		return lostOutput{runErr}
	}
	if err := sout.final(v); err != nil {
		return lostOutput{fmt.Errorf("print the final value of v (%d bytes): %w", len(v), endpoint.Cause(err))}
	}
	// A store that could not keep v (its log removed, replaced or
	// unwritable) outranks a signal: the status and the last line must
	// not read as a clean stop.
	if err := st.Close(); err != nil {
		notKept := fmt.Errorf("v (%d bytes) is not kept: %w; the final value printed above is the only copy", len(v), err)
		sout.end(ctx, notKept) // standard output works: --json says it too
		return lostOutput{notKept}
	}
	return runErr
}
