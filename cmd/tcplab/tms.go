package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/multicopy"
)

// tmsConfig is what tms's flags say: the protocol's fields and the
// server's caps.
type tmsConfig struct {
	proto        multicopy.Server
	caps         server.Server
	noWait, keep bool
	logFormat    string
	json         *bool
}

// tmsFields names the flag that sets each config field, for Validate's
// errors.
var tmsFields = map[string]string{
	"Copies": "copies", "MaxConns": "max-conns", "MaxConnsPerAddr": "max-conns-per-addr",
	"QuietGap": "gap", "ReadTimeout": "read-timeout", "WriteTimeout": "write-timeout",
}

func (c *tmsConfig) flags(fs *flagSet) {
	fs.Int64Var(&c.proto.Copies, "copies", multicopy.DefaultCopies, "how many copies of the string to send back (tmc expects 10000 unless given the same --copies)")
	fs.BoolVar(&c.noWait, "no-wait", false, "send at once, without waiting for the go-ahead on standard input")
	fs.BoolVar(&c.keep, "keep", false, "serve any number of clients concurrently until SIGINT/SIGTERM (no go-ahead)")
	fs.DurationVar(&c.caps.Grace, "grace", server.DefaultGrace, "how long a transfer in flight may take to finish after a signal (a second signal ends it at once, with a reset)")
	fs.IntVar(&c.caps.MaxConns, "max-conns", multicopy.DefaultMaxConns, "with --keep: clients served at once; one more is told \"busy: ...\" at once and closed; each may hold up to about 1.7 MB")
	fs.IntVar(&c.caps.MaxConnsPerAddr, "max-conns-per-addr", 0, "with --keep: clients served at once from one address (an IPv6 /64); 0: a quarter of --max-conns, -1: no limit")
	fs.DurationVar(&c.proto.QuietGap, "gap", multicopy.DefaultQuietGap, "silence that ends a string with no newline on a clean link (longer on a lossy or slow one)")
	fs.DurationVar(&c.proto.ReadTimeout, "read-timeout", multicopy.DefaultReadTimeout, "reset a client whose string is not complete this long after it connects")
	fs.DurationVar(&c.proto.WriteTimeout, "write-timeout", multicopy.DefaultWriteTimeout, "drop a client that reads nothing for this long")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on standard error: text or json")
	c.json = addJSONFlag(fs)
}

// validate checks the flags as the config they fill: a zero the flag
// refuses, then the config's own Validate.
func (c *tmsConfig) validate(fs *flagSet) error {
	if err := fs.refuseZero("copies", "max-conns"); err != nil {
		return err
	}
	if c.caps.Grace == 0 {
		c.caps.Grace = -1 // --grace 0: none
	}
	c.caps.Handler = &c.proto
	return fs.configError(c.caps.Validate(), tmsFields)
}

func runTMS(ctx context.Context, std stdio, args []string) (err error) {
	var c tmsConfig
	fs := newFlagSet("tms")
	c.flags(fs)
	port, err := fs.parseServerPort(std, args)
	if err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	// Standard output and error must never hold a handler up, nor stop
	// the server when nobody reads them (see server.Output).
	stdout, stderr := server.NewOutput(std.out), server.NewOutput(std.err)
	defer closeServerOutput(stdout, stderr)
	sout := serverOut{w: stdout, json: *c.json}
	log, err := newLogger(stderr, c.logFormat)
	if err != nil {
		return err
	}
	ln, err := port.ListenForRequests(ctx)
	if err != nil {
		return err
	}
	log.Info("tms listening", "addr", ln.Addr().String())
	sout.listening("tms", port, ln, "copies", c.proto.Copies, "keep", c.keep)
	defer func() { flushLogs(log); sout.end(ctx, err) }() // the log limit's counts come before the end
	c.proto.Logger, c.caps.Logger, c.caps.Hurry = log, log, std.hurry
	if c.keep {
		// Many clients: their lines are under the log limit.
		c.proto.ClientLog = limitedLines(log, sout.clientLog(), "client is at", stdout)
		return c.caps.Run(ctx, ln)
	}
	return c.serveOne(ctx, std, ln, sout.clientLog(), stderr)
}

// serveOne is tms.py: one client (server.AcceptOnce), then tms stops; its
// go-ahead is a line on standard input unless --no-wait.
func (c *tmsConfig) serveOne(ctx context.Context, std stdio, ln net.Listener, clientLog, prompt io.Writer) error {
	c.proto.ClientLog = clientLog
	if !c.noWait {
		c.proto.GoAhead = func(ctx context.Context, msg []byte) error {
			fmt.Fprintf(prompt, "tcplab tms: got %d bytes; press Enter to send them back %d times\n", len(msg), c.proto.Copies)
			return waitForLine(ctx, std.in)
		}
	}
	one := multicopy.NewOne(&c.proto)
	c.caps.Handler = one
	if err := c.caps.Run(ctx, server.AcceptOnce(ln)); err != nil {
		return err
	}
	if _, err := one.Result(); err != nil && ctx.Err() == nil {
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
