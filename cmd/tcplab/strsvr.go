package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
	"github.com/tcplab/tcplab/store/redisstore"
)

func runStrSvr(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("strsvr", "[flags] PORT", `
The shared-string server of the tutorial's section 6 (strsvr.py). Clients
send letters; every byte any client sends is appended to one string v, in
the order the bytes arrive, and the server answers each byte with v as it is
right after that append. When the last client has left (after at least one
came) it prints "the final value of v is V" and exits, as the tutorial's
does; --keep keeps serving instead. SIGINT or SIGTERM also prints v, closes
the clients and exits 0.

Unlike the tutorial's server, which accepts exactly two clients and then
polls them at 100% CPU, it serves any number of clients, joining and leaving
at any time, with no CPU used while they are idle. --clients N reproduces
the tutorial: nobody is served until N clients have connected.

Classic clients (the tutorial's strclnt.py, nc) get exactly the tutorial's
bytes. A tcplab strclnt finds this server by a UDP probe on the same port
number and switches its connection to framed replies, in which v always
arrives whole (see docs/sharedstring.md).

v is kept in memory unless --data FILE is given: then every append goes to
an append-only log first, and a restart recovers v exactly. With
--fsync always (the default) no answered byte is lost, even to a power cut;
with --fsync interval, answered bytes survive the process being killed and
at most --fsync-interval is lost to a power cut. A torn last write is cut at
start (a WARN gives the bytes); a log damaged before valid records is
refused, unchanged, until "strsvr --repair FILE" (which keeps a copy and
says what it drops). Letters that cannot be written (a full disk) are
never answered: a framed client is told why, a classic one is closed, and
the server takes letters again once the disk does.

--store redis://HOST:PORT/DB?key=NAME keeps v in Redis instead: every strsvr
given the same Redis and key serves one and the same v, and the final v is
printed when the last client of the whole group has left (see docs/redis.md).

Limits: at most --max-conns clients are served at once (the rest wait in
the listen backlog), and of them at most --max-watchers watchers (strclnt
--watch, which has no read timeout); a watcher over that cap is told
"too many watchers" (an 'e' frame) and closed. A client that accepts no
reply bytes for --write-timeout is reset. v never grows past --max-value
bytes (with --store redis, by at most 4 KiB per client then appending).
Logs on standard error go through a queue: if nobody reads them, lines are
dropped and counted, and clients are never held up.`,
		"tcplab strsvr 2000                 # then, twice: tcplab strclnt localhost 2000",
		"tcplab strsvr --clients 2 2000     # the tutorial exactly: wait for two clients",
		"tcplab strsvr --keep --data v.log 2000",
		"tcplab strsvr --repair v.log          # after strsvr refused a damaged log",
		"tcplab strsvr --store 'redis://localhost:6379/0?key=v' 2000   # on each of several hosts")
	keep := fs.Bool("keep", false, "keep serving when the last client leaves (stop with SIGINT/SIGTERM)")
	waitFor := fs.Int("clients", 0, "serve nobody until this many clients have connected (the tutorial's nc = 2)")
	data := fs.String("data", "", "keep v in this append-only log file, recovered on restart")
	fsyncFlag := fs.String("fsync", "always", "with --data: when to fsync the log: always or interval")
	fsyncEvery := fs.Duration("fsync-interval", time.Second, "with --fsync interval: time between fsyncs")
	storeURL := fs.String("store", "", "keep v in Redis, shared by every strsvr on the same `URL`: redis://[:PASSWORD@]HOST:PORT/DB?key=NAME (rediss:// for TLS)")
	maxConns := fs.Int("max-conns", sharedstring.DefaultMaxConns, "clients served at once, watchers included (the rest wait in the listen backlog)")
	maxWatchers := fs.Int("max-watchers", 0, "watchers (strclnt --watch) served at once, fewer than --max-conns; one more is refused and closed (default a quarter of --max-conns)")
	maxValue := fs.Int("max-value", sharedstring.DefaultMaxValue, "largest v in bytes; a client that would grow v beyond it is dropped")
	writeTimeout := fs.Duration("write-timeout", sharedstring.DefaultWriteIdle, "reset a client that accepts no reply bytes for this long")
	readTimeout := fs.Duration("read-timeout", sharedstring.DefaultReadIdle, "drop a client that sends nothing for this long (not watchers; 0: never)")
	noDiscovery := fs.Bool("no-discovery", false, "do not answer the UDP probe: every client is classic")
	logFormat := fs.String("log-format", "text", "log format on standard error: text or json")
	repair := fs.String("repair", "", "repair the data `FILE` (--data) and exit: keep a copy, drop only damaged bytes, say what was dropped")
	port, err := strsvrPort(fs, std, args, repair)
	if err != nil {
		return err
	}
	if *repair != "" {
		return repairLog(std, *repair)
	}
	switch {
	case *waitFor < 0:
		return usagef("--clients must be at least 0, not %d", *waitFor)
	case *maxConns < 1:
		return usagef("--max-conns must be at least 1, not %d", *maxConns)
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
	case *fsyncEvery <= 0:
		return usagef("--fsync-interval must be positive, not %s", *fsyncEvery)
	}
	policy, err := store.ParseFsync(*fsyncFlag)
	if err != nil {
		return usageError{err.Error()}
	}
	// Many clients at once: a standard error that nobody reads must never
	// hold a handler up (see serverOutput). The final value of v still goes
	// to standard output directly, whole, at exit.
	errOut := newServerOutput(std.err)
	defer func() {
		if n := errOut.dropped.Load(); n > 0 {
			fmt.Fprintf(errOut, "tcplab: %d lines of output were dropped: standard error was not being read\n", n)
		}
		errOut.Close()
	}()
	log, err := newLogger(errOut, *logFormat)
	if err != nil {
		return err
	}

	if *storeURL != "" {
		if *data != "" {
			return usagef("--store and --data are two places for v: give one")
		}
		if _, err := redisstore.ParseURL(*storeURL); err != nil {
			return usageError{err.Error()}
		}
	}

	var st store.Store
	if *storeURL != "" {
		rs, err := redisstore.Open(ctx, *storeURL, redisstore.WithLogger(log))
		if err != nil {
			return err
		}
		st = rs
	} else if *data != "" {
		f, err := store.OpenFile(*data, store.FileOptions{Fsync: policy, Interval: *fsyncEvery, Logger: log})
		if err != nil {
			return openLogError(err)
		}
		if f.Dropped() > 0 {
			log.Warn("cut a torn tail (an interrupted last write, never answered) from the data file", "file", *data, "bytes", f.Dropped())
		}
		st = f
	} else {
		st = store.NewMemory()
	}
	defer st.Close()
	if err := checkRecovered(ctx, log, st, *maxValue, storeName(*data, *storeURL)); err != nil {
		return err
	}

	ln, err := endpoint.Listen(ctx, ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	read := *readTimeout
	if read == 0 {
		read = -1 // the Server's "never"
	}
	srv := &sharedstring.Server{
		Store:       st,
		WaitFor:     *waitFor,
		WriteIdle:   *writeTimeout,
		ReadIdle:    read,
		MaxValue:    *maxValue,
		MaxConns:    *maxConns,
		MaxWatchers: *maxWatchers,
		Logger:      log,
	}
	actual := ln.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	failed := make(chan error, 2)
	discovery := false
	if !*noDiscovery {
		pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(actual))
		if err != nil {
			log.Warn("no framed-mode discovery: every client will be classic", "err", endpoint.Cause(err))
		} else {
			discovery = true
			wg.Go(func() { srv.ServeDiscovery(pc) })
		}
	}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, server.ErrServerClosed) {
			failed <- err
		}
	})
	log.Info("strsvr listening", "addr", ln.Addr().String(), "discovery", discovery)

	waitCtx, cancel := context.WithCancel(ctx)
	empty := make(chan error, 1)
	if !*keep {
		wg.Go(func() { empty <- srv.WaitEmpty(waitCtx) })
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("signal: stopping")
	case err := <-empty:
		if err != nil && ctx.Err() == nil {
			runErr = fmt.Errorf("watch clients: %w", err)
		}
	case err := <-failed:
		runErr = fmt.Errorf("accept: %w", err)
	}
	cancel()
	srv.Close()
	wg.Wait()
	flushStore(st)
	v, err := st.Value(context.Background())
	if err != nil {
		return fmt.Errorf("read v: %w", err)
	}
	fmt.Fprintf(std.out, "the final value of v is %s\n", v)
	if err := st.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close store: %w", err)
	}
	return runErr
}
