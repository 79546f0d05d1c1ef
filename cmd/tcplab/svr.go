package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os/signal"
	"strings"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/status"
)

// svrConfig is what svr's flags say: the protocol's fields, its runner's,
// the server's caps, and what is built from them.
type svrConfig struct {
	svc                status.Service
	runner             status.Runner
	caps               server.Server
	commands, allow    string
	native, psArgs     bool
	perAddr, burst     int
	perSec             float64
	metrics, logFormat string
	tls                svrTLSFlags
	json               *bool
	allowList          *status.AllowList // from commands, native and psArgs
	tlsSrv             *endpoint.TLSServer
}

// svrFields names the flag that sets each config field, for Validate's
// errors.
var svrFields = map[string]string{
	"MaxConns": "max-conns", "MaxConnsPerAddr": "max-conns-per-addr", "MaxOutput": "max-output",
	"Timeout": "timeout", "ReadTimeout": "read-timeout", "WriteTimeout": "write-timeout",
}

func (c *svrConfig) flags(fs *flagSet) {
	fs.StringVar(&c.commands, "commands", strings.Join(status.DefaultCommands, ","), "comma-separated `names` clients may ask for (built-in set only)")
	fs.StringVar(&c.allow, "allow", "", "comma-separated `CIDRs` allowed to connect (default everyone)")
	fs.IntVar(&c.caps.MaxConns, "max-conns", status.DefaultMaxConns, "connections served at once; one more is refused at once")
	fs.IntVar(&c.perAddr, "max-conns-per-addr", status.DefaultMaxConnsPerAddr, "connections served at once from one address (an IPv6 /64); one more is refused at once; 0: a quarter of --max-conns, -1: no limit; by default 64, or a quarter of --max-conns if that is less")
	fs.Float64Var(&c.perSec, "rate", 20, "requests per second allowed per client address (0: no limit)")
	fs.IntVar(&c.burst, "burst", 40, "burst of requests allowed per client address")
	fs.DurationVar(&c.runner.Fresh, "fresh", status.DefaultFresh, "reuse a command's output for this long (0: only share runs in flight)")
	fs.DurationVar(&c.runner.Timeout, "timeout", status.DefaultRunTimeout, "kill a command that runs longer than this")
	fs.DurationVar(&c.svc.ReadTimeout, "read-timeout", status.DefaultReadTimeout, "drop a client that sends no command name within this")
	fs.DurationVar(&c.svc.WriteTimeout, "write-timeout", status.DefaultWriteTimeout, "reset a client that has not taken (acknowledged) the whole answer within this")
	fs.IntVar(&c.runner.MaxOutput, "max-output", status.DefaultMaxOutput, "keep at most this many `bytes` of a command's output")
	fs.BoolVar(&c.native, "native", false, "render w, ps and uptime from /proc and the login records even if the programs are installed")
	fs.BoolVar(&c.psArgs, "ps-args", false, "show other processes' command-line arguments (ps's COMMAND, w's WHAT, json) to clients; by default only command names, as the tutorial's bare ps, since arguments often hold secrets")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on standard error: text (with the tutorial's \"client is at\" lines on stdout) or json (every client a JSON record)")
	fs.DurationVar(&c.caps.Grace, "grace", status.DefaultGrace, "on SIGINT/SIGTERM, wait this long for requests in flight (a second signal: no longer)")
	c.tls = addSVRTLSFlags(fs)
	c.json = addJSONFlag(fs)
}

// validate checks the flags as the config they fill, and builds the
// allow-list, the networks and the TLS server from them.
func (c *svrConfig) validate(fs *flagSet) (err error) {
	if c.allowList, err = status.NewAllowListWith(strings.Split(c.commands, ","), status.AllowOptions{Native: c.native, Args: c.psArgs}); err != nil {
		return usagef("--commands: %v", err)
	}
	if c.svc.Nets, err = status.ParseNets(c.allow); err != nil {
		return usagef("--allow: %v", err)
	}
	if err := fs.refuseZero("max-conns", "max-output"); err != nil {
		return err
	}
	switch {
	case c.burst < 1:
		return usagef("--burst must be at least 1, not %d", c.burst)
	case c.perSec < 0 || math.IsNaN(c.perSec) || math.IsInf(c.perSec, 0):
		return usagef("--rate must be a number of requests per second, at least 0, not %v", c.perSec)
	case c.metrics != "" && checkListenAddr(c.metrics) != nil:
		return usagef("--metrics: %v", checkListenAddr(c.metrics))
	}
	switch {
	case !fs.isSet("max-conns-per-addr"): // zero: status.Service's default
	case c.perAddr == 0:
		c.caps.MaxConnsPerAddr = server.QuarterOf(c.caps.MaxConns) // the flag's "0: a quarter"
	default:
		c.caps.MaxConnsPerAddr = c.perAddr
	}
	if c.runner.Fresh == 0 {
		c.runner.Fresh = -1 // --fresh 0: no reuse
	}
	if c.caps.Grace == 0 {
		c.caps.Grace = -1 // --grace 0: none
	}
	c.svc.Allow, c.svc.Runner, c.caps.Handler = c.allowList, &c.runner, &c.svc
	if err := fs.configError(c.caps.Validate(), svrFields); err != nil {
		return err
	}
	c.tlsSrv, err = c.tls.load()
	return err
}

func runSVR(ctx context.Context, std stdio, args []string) (err error) {
	hup := catchHangups()
	defer signal.Stop(hup)
	var c svrConfig
	fs := newFlagSet("svr", "{builtins}", strings.Join(status.BuiltinNames(), ", "))
	c.flags(fs)
	port, err := fs.parseServerPort(std, args)
	if err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	// Many clients at once: standard output and error must never hold a
	// handler up (see server.Output).
	stdout, stderr := server.NewOutput(std.out), server.NewOutput(std.err)
	defer closeServerOutput(stdout, stderr)
	logger, err := newLogger(stderr, c.logFormat)
	if err != nil {
		return err
	}
	sout := serverOut{w: stdout, json: *c.json}
	c.wire(logger, sout, stdout)
	ln, err := port.ListenForRequests(ctx)
	if err != nil {
		return err
	}
	if c.metrics != "" {
		stop, err := c.serveMetrics(ctx, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	for _, cmd := range c.allowList.Commands() {
		logger.Info("command", "name", cmd.Name(), "runs", cmd.Runs())
	}
	logTLSWarnings(logger, c.tlsSrv)
	logger.Info("listening", "addr", ln.Addr().String(), "allowed", c.allowList.String(), "tls", tlsMode(c.tlsSrv))
	sout.listening("svr", port, ln, "commands", c.allowList.Names(), "tls", tlsMode(c.tlsSrv))
	defer func() { flushLogs(logger); sout.end(ctx, err) }() // the log limit's counts come before the end
	defer reloadOnHangup(ctx, hup, c.tlsSrv, logger)()
	c.caps.Hurry = std.hurry
	return c.caps.Run(ctx, ln)
}

// wire gives the service what the process provides: the logger, the rate
// limiter, TLS, and the tutorial's "client is at" lines under the log
// limit.
func (c *svrConfig) wire(logger *slog.Logger, sout serverOut, stdout *server.Output) {
	c.svc.Logger, c.caps.Logger = logger, logger
	if c.perSec > 0 {
		c.svc.Limiter = status.NewClientLimiter(c.perSec, c.burst)
	}
	if c.tlsSrv != nil {
		c.svc.TLS = c.tlsSrv.Config()
	}
	if c.logFormat != "json" || *c.json {
		c.svc.ClientLog = limitedLines(logger, sout.clientLog(), "client is at", stdout)
	}
}

// serveMetrics serves --metrics and counts runs, refusals and evictions.
func (c *svrConfig) serveMetrics(ctx context.Context, logger *slog.Logger) (stop func(), err error) {
	c.svc.Metrics = status.NewMetrics()
	c.runner.OnRun = c.svc.Metrics.ObserveRun
	mln, err := endpoint.Listen(ctx, c.metrics)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	c.svc.Metrics.CountConnections(c.caps.Refused, c.caps.Evicted)
	logger.Info("metrics", "url", "http://"+mln.Addr().String()+"/metrics")
	return c.svc.Metrics.Serve(mln), nil
}
