package main

import (
	"context"

	"github.com/tcplab/tcplab/sharedstring"
)

func runStrClnt(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("strclnt")
	watch := fs.Bool("watch", false, "print v live as any client changes it (framed mode)")
	classic := fs.Bool("classic", false, "do not probe: speak the tutorial's protocol")
	framed := fs.Bool("framed", false, "do not probe: require a tcplab strsvr")
	timeout := fs.Duration("timeout", sharedstring.DefaultReplyTimeout, "limit for connecting and for each reply")
	probe := fs.Duration("probe-timeout", sharedstring.DefaultProbeTimeout, "how long to wait for a tcplab strsvr to answer the UDP probe")
	maxValue := fs.Int("max-value", sharedstring.DefaultMaxValue, "largest v in bytes this client accepts")
	pos, err := fs.parse(std, args, 2, 2)
	if err != nil {
		return err
	}
	if err := checkHost(hostArg(pos[0])); err != nil {
		return err
	}
	if err := checkDialPort(pos[1]); err != nil {
		return err
	}
	switch {
	case *classic && (*framed || *watch):
		return usagef("--classic cannot go with --framed or --watch")
	case *timeout <= 0:
		return usagef("--timeout must be positive, not %s", *timeout)
	case *probe <= 0:
		return usagef("--probe-timeout must be positive, not %s", *probe)
	case *maxValue < 1:
		return usagef("--max-value must be at least 1, not %d", *maxValue)
	}
	opts := sharedstring.Options{Watch: *watch, DialTimeout: *timeout, ProbeTimeout: *probe,
		ReplyTimeout: *timeout, MaxValue: *maxValue}
	switch {
	case *classic:
		opts.Mode = sharedstring.Classic
	case *framed:
		opts.Mode = sharedstring.Framed
	}
	c, err := sharedstring.Dial(ctx, hostArg(pos[0]), pos[1], opts)
	if err != nil {
		return err
	}
	defer c.Close()
	// v is text from the network: on a terminal, escaped (see terminalSafe).
	return c.Session(ctx, std.in, terminalSafe(std.out))
}
