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
	"github.com/tcplab/tcplab/store"
)

// strsvrConfig is what strsvr's flags say: the protocol's fields, the
// server's caps, and where v is kept.
type strsvrConfig struct {
	proto       sharedstring.Server
	caps        server.Server
	where       storePlace
	noDiscovery bool
	logFormat   string
	json        *bool
	repair      string
}

// strsvrFields names the flag that sets each config field, for Validate's
// errors.
var strsvrFields = map[string]string{
	"WaitFor": "clients", "MaxConns": "max-conns", "MaxConnsPerAddr": "max-conns-per-addr",
	"MaxWatchers": "max-watchers", "MaxValue": "max-value", "WriteTimeout": "write-timeout",
}

func (c *strsvrConfig) flags(fs *flagSet) {
	c.proto.MaxValue, c.caps.MaxConns = sharedstring.DefaultMaxValue, sharedstring.DefaultMaxConns
	fs.BoolVar(&c.proto.Keep, "keep", false, "keep serving when the last client leaves (stop with SIGINT/SIGTERM)")
	fs.IntVar(&c.proto.WaitFor, "clients", 0, "serve nobody until this many clients have connected (the tutorial's nc = 2)")
	fs.StringVar(&c.where.data, "data", "", "keep v in this append-only log file, recovered on restart")
	fs.StringVar(&c.where.fsync, "fsync", "always", "with --data: when to fsync the log: always or interval")
	fs.DurationVar(&c.where.fsyncEvery, "fsync-interval", time.Second, "with --fsync interval: time between fsyncs")
	fs.StringVar(&c.where.url, "store", "", "keep v in Redis, shared by every strsvr on the same `URL`: redis://HOST:PORT/DB?key=NAME (rediss:// for TLS); the password is taken from $REDISCLI_AUTH (a password in the URL would show in ps)")
	fs.IntVar(&c.caps.MaxConns, "max-conns", c.caps.MaxConns, "clients served at once, watchers included; one more is refused at once")
	fs.IntVar(&c.caps.MaxConnsPerAddr, "max-conns-per-addr", 0, "clients served at once from one address (an IPv6 /64); 0: a quarter of --max-conns (at least --clients), -1: no limit")
	fs.IntVar(&c.proto.MaxWatchers, "max-watchers", 0, "watchers (strclnt --watch) served at once, fewer than --max-conns; one more is refused and closed (default a quarter of --max-conns)")
	fs.IntVar(&c.proto.MaxValue, "max-value", c.proto.MaxValue, "largest v in bytes; a client that would grow v beyond it is dropped")
	fs.DurationVar(&c.proto.WriteTimeout, "write-timeout", sharedstring.DefaultWriteTimeout, "reset a client that accepts no reply bytes for this long")
	fs.DurationVar(&c.proto.ReadTimeout, "read-timeout", sharedstring.DefaultReadTimeout, "drop a client that sends nothing for this long (not watchers; 0: never)")
	fs.BoolVar(&c.noDiscovery, "no-discovery", false, "do not answer the UDP probe: every client is classic")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on standard error: text or json")
	c.json = addJSONFlag(fs)
	fs.StringVar(&c.repair, "repair", "", "repair the data `FILE` (--data) and exit: keep a copy, drop only damaged bytes, say what was dropped")
}

// validate checks the flags as the config they fill: a zero the flag
// refuses, then the config's own Validate, then the fsync flags.
func (c *strsvrConfig) validate(fs *flagSet) error {
	if err := fs.refuseZero("max-conns", "max-watchers", "max-value", "write-timeout"); err != nil {
		return err
	}
	if c.proto.ReadTimeout == 0 {
		c.proto.ReadTimeout = -1 // --read-timeout 0: never
	}
	c.caps.Handler = &c.proto
	if err := fs.configError(c.caps.Validate(), strsvrFields); err != nil {
		return err
	}
	return c.where.checkFsync()
}

func runStrSvr(ctx context.Context, std stdio, args []string) (err error) {
	var c strsvrConfig
	fs := newFlagSet("strsvr")
	c.flags(fs)
	port, err := strsvrPort(fs, std, args, &c.repair)
	if err != nil {
		return err
	}
	if c.repair != "" {
		return repairLog(ctx, std, c.repair)
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	// Many clients at once: a standard error that nobody reads must never
	// hold a handler up (see server.Output). The final value of v still goes
	// to standard output directly, whole, at exit: no queue.
	errOut := server.NewOutput(std.err)
	defer closeServerOutput(nil, errOut)
	log, err := newLogger(errOut, c.logFormat)
	if err != nil {
		return err
	}
	if err := c.where.checkPlace(); err != nil {
		return err
	}
	st, err := c.where.open(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkRecovered(ctx, log, st, c.proto.MaxValue, c.where.name()); err != nil {
		return err
	}
	ln, err := port.Listen(ctx)
	if err != nil {
		return err
	}
	var pc net.PacketConn
	if !c.noDiscovery {
		if pc, err = port.ListenDatagram(ln.Addr().(*net.TCPAddr).Port); err != nil {
			log.Warn("no framed-mode discovery: every client will be classic", "err", endpoint.Cause(err))
		}
	}
	sout := serverOut{w: std.out, json: *c.json}
	sout.listening("strsvr", port, ln, "discovery", pc != nil, "store", c.where.name())
	defer func() {
		if _, lost := err.(lostOutput); !lost {
			sout.end(ctx, err)
		}
	}()
	c.proto.Store, c.proto.Logger = st, log
	v, runErr := c.proto.Run(ctx, &c.caps, ln, pc)
	return strsvrEnd(ctx, sout, st, v, runErr)
}

// strsvrEnd prints the final value of v and says how strsvr ended.
func strsvrEnd(ctx context.Context, sout serverOut, st store.Store, v []byte, runErr error) error {
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
