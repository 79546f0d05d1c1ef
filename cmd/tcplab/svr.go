package main

import (
	"context"
	"fmt"
	"math"
	"os/signal"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/status"
)

func runSVR(ctx context.Context, std stdio, args []string) (err error) {
	hup := catchHangups()
	defer signal.Stop(hup)
	fs := newFlagSet("svr", "{builtins}", strings.Join(status.BuiltinNames(), ", "))
	commands := fs.String("commands", strings.Join(status.DefaultCommands, ","), "comma-separated `names` clients may ask for (built-in set only)")
	allow := fs.String("allow", "", "comma-separated `CIDRs` allowed to connect (default everyone)")
	maxConns := fs.Int("max-conns", 1000, "connections served at once; one more is refused at once")
	maxPerAddr := fs.Int("max-conns-per-addr", status.DefaultMaxConnsPerAddr, "connections served at once from one address (an IPv6 /64); one more is refused at once; 0: a quarter of --max-conns, -1: no limit; by default 64, or a quarter of --max-conns if that is less")
	perSec := fs.Float64("rate", 20, "requests per second allowed per client address (0: no limit)")
	burst := fs.Int("burst", 40, "burst of requests allowed per client address")
	fresh := fs.Duration("fresh", status.DefaultFresh, "reuse a command's output for this long (0: only share runs in flight)")
	runTimeout := fs.Duration("timeout", status.DefaultRunTimeout, "kill a command that runs longer than this")
	readTimeout := fs.Duration("read-timeout", status.DefaultReadTimeout, "drop a client that sends no command name within this")
	writeTimeout := fs.Duration("write-timeout", status.DefaultWriteTimeout, "reset a client that has not taken (acknowledged) the whole answer within this")
	maxOutput := fs.Int("max-output", status.DefaultMaxOutput, "keep at most this many `bytes` of a command's output")
	native := fs.Bool("native", false, "render w, ps and uptime from /proc and the login records even if the programs are installed")
	psArgs := fs.Bool("ps-args", false, "show other processes' command-line arguments (ps's COMMAND, w's WHAT, json) to clients; by default only command names, as the tutorial's bare ps, since arguments often hold secrets")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics")
	logFormat := fs.String("log-format", "text", "log format on standard error: text (with the tutorial's \"client is at\" lines on stdout) or json (every client a JSON record)")
	grace := fs.Duration("grace", 10*time.Second, "on SIGINT/SIGTERM, wait this long for requests in flight (a second signal: no longer)")
	tlsFlags := addSVRTLSFlags(fs)
	asJSON := addJSONFlag(fs)
	port, err := fs.parseServerPort(std, args)
	if err != nil {
		return err
	}
	al, err := status.NewAllowListWith(strings.Split(*commands, ","), status.AllowOptions{Native: *native, Args: *psArgs})
	if err != nil {
		return usagef("--commands: %v", err)
	}
	nets, err := status.ParseNets(*allow)
	if err != nil {
		return usagef("--allow: %v", err)
	}
	switch {
	case *maxConns < 1:
		return usagef("--max-conns must be at least 1, not %d", *maxConns)
	case *burst < 1:
		return usagef("--burst must be at least 1, not %d", *burst)
	case *perSec < 0 || math.IsNaN(*perSec) || math.IsInf(*perSec, 0):
		return usagef("--rate must be a number of requests per second, at least 0, not %v", *perSec)
	case *maxOutput < 1:
		return usagef("--max-output must be at least 1, not %d", *maxOutput)
	case *metricsAddr != "" && checkListenAddr(*metricsAddr) != nil:
		return usagef("--metrics: %v", checkListenAddr(*metricsAddr))
	case *maxPerAddr < -1:
		return usagef("--max-conns-per-addr must be -1 (no limit), 0 (a quarter of --max-conns) or more, not %d", *maxPerAddr)
	}
	if !flagGiven(fs, "max-conns-per-addr") {
		*maxPerAddr = status.MaxConnsPerAddrFor(*maxConns)
	}
	tlsSrv, err := tlsFlags.load()
	if err != nil {
		return err
	}
	// Many clients at once: standard output and error must never hold a
	// handler up (see server.Output).
	stdout, stderr := server.NewOutput(std.out), server.NewOutput(std.err)
	defer closeServerOutput(stdout, stderr)
	logger, err := newLogger(stderr, *logFormat)
	if err != nil {
		return err
	}
	svc := &status.Service{
		Allow:        al,
		Runner:       &status.Runner{Timeout: *runTimeout, MaxOutput: *maxOutput, Fresh: *fresh, NoReuse: *fresh == 0},
		Nets:         nets,
		ReadTimeout:  *readTimeout,
		WriteTimeout: *writeTimeout,
		Logger:       logger,
	}
	if *perSec > 0 {
		svc.Limiter = status.NewClientLimiter(*perSec, *burst)
	}
	if tlsSrv != nil {
		svc.TLS = tlsSrv.Config()
	}
	sout := serverOut{w: stdout, json: *asJSON}
	if *logFormat != "json" || *asJSON {
		// The tutorial's "client is at" lines, under the log limit.
		svc.ClientLog = limitedLines(logger, sout.clientLog(), "client is at", stdout)
	}

	ln, err := port.ListenForRequests(ctx)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		svc.Metrics = status.NewMetrics()
		svc.Runner.OnRun = svc.Metrics.ObserveRun
		mln, err := endpoint.Listen(ctx, *metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--metrics: %w", err)
		}
		defer svc.Metrics.Serve(mln)()
		logger.Info("metrics", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	for _, c := range al.Commands() {
		logger.Info("command", "name", c.Name(), "runs", c.Runs())
	}
	logTLSWarnings(logger, tlsSrv)
	logger.Info("listening", "addr", ln.Addr().String(), "allowed", al.String(), "tls", tlsMode(tlsSrv))
	sout.listening("svr", port, ln, "commands", al.Names(), "tls", tlsMode(tlsSrv))
	defer func() { flushLogs(logger); sout.end(ctx, err) }() // the log limit's counts come before the end
	defer reloadOnHangup(ctx, hup, tlsSrv, logger)()
	// A full svr makes room for a client that asks by closing the
	// connection that has waited longest for its request, of the address
	// with the most waiting (status.Service says when a request is
	// complete).
	srv := &server.Server{Handler: svc, MaxConns: *maxConns, MaxConnsPerAddr: *maxPerAddr, EvictWaiting: true, Refuse: server.RefuseLine, Grace: *grace, Logger: logger}
	if svc.Metrics != nil {
		svc.Metrics.CountConnections(srv.Refused, srv.Evicted)
	}
	return srv.Run(ctx, ln)
}
