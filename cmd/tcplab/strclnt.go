package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/stream"
)

// maxLetterLine bounds one line typed at strclnt.
const maxLetterLine = 1 << 20

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
	// Ctrl-C ends the client at once in every state, waiting for a reply
	// too (strsvr --clients 2 before the second client joins): closing
	// the connection makes the blocked read return.
	defer context.AfterFunc(ctx, func() { c.Close() })()
	// v is text from the network: on a terminal, escaped (see terminalSafe).
	std.out = terminalSafe(std.out)

	// Lines are read in their own goroutine so that a signal ends the
	// client even while it waits for the user.
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		br := bufio.NewReader(std.in)
		for {
			line, err := stream.ReadLine(br, maxLetterLine)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case lines <- line:
			case <-stop:
				return
			}
		}
	}()
	nextLine := func() ([]byte, error) {
		select {
		case line := <-lines:
			return line, nil
		case err := <-readErr:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	if *watch {
		return watchLoop(ctx, std, c, lines, readErr)
	}
	for {
		fmt.Fprint(std.out, "enter a letter:")
		line, err := nextLine()
		switch {
		case errors.Is(err, stream.ErrLineTooLong):
			return fmt.Errorf("line longer than %d bytes", maxLetterLine)
		case err != nil || len(line) == 0:
			return nil // end of input, a signal or an empty line: leave
		}
		v, err := c.Send(line)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(std.out, "%s\n", v); err != nil {
			return err
		}
	}
}

// watchLoop prints v whenever a frame comes, and sends the lines typed,
// until an empty line, a signal, or the server going away. End of input
// does not leave: a watcher may have nothing to type.
func watchLoop(ctx context.Context, std stdio, c *sharedstring.Client, lines <-chan []byte, readErr <-chan error) error {
	frames := make(chan error, 1)
	go func() {
		for {
			_, v, err := c.Next()
			if err != nil {
				frames <- err
				return
			}
			fmt.Fprintf(std.out, "%s\n", v)
		}
	}()
	finished := false
	defer func() {
		c.Close()
		if !finished {
			<-frames
		}
	}()
	for {
		select {
		case line := <-lines:
			if len(line) == 0 {
				return nil
			}
			if err := c.Write(line); err != nil {
				return err
			}
		case err := <-readErr:
			if errors.Is(err, stream.ErrLineTooLong) {
				return fmt.Errorf("line longer than %d bytes", maxLetterLine)
			}
			readErr = nil // end of input: keep watching
		case err := <-frames:
			finished = true
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-ctx.Done():
			return nil
		}
	}
}
