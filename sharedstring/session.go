package sharedstring

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tcplab/tcplab/stream"
)

// prompt is what the tutorial's strclnt.py prints before each letter.
const prompt = "enter a letter:"

// MaxLine bounds one line typed at a session.
const MaxLine = 1 << 20

// Session is strclnt's life on c: the tutorial's loop (print the prompt, read
// a line from in, send it, print v on out) until an empty line or the end
// of in; or, for a watcher (Options.Watch), v printed whenever a frame
// comes while the lines typed are sent, until an empty line or the server
// going away (the end of in does not end a watcher: it may have nothing
// to type). When ctx ends, the session ends at once in every state,
// waiting for a reply too (strsvr --clients 2 before the second client
// joins), with a nil error; c is then closed. Lines are read in their own
// goroutine so that ctx ends the session even while it waits for the
// user; that goroutine may outlive Session while a read of in blocks.
func (c *Client) Session(ctx context.Context, in io.Reader, out io.Writer) error {
	// Closing the connection makes a blocked read return.
	defer context.AfterFunc(ctx, func() { c.Close() })()
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		br := bufio.NewReader(in)
		for {
			line, err := stream.ReadLine(br, MaxLine)
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
	if c.opts.Watch {
		return c.watchSession(ctx, out, lines, readErr)
	}
	for {
		fmt.Fprint(out, prompt)
		var line []byte
		var err error
		select {
		case line = <-lines:
		case err = <-readErr:
		case <-ctx.Done():
			err = ctx.Err()
		}
		switch {
		case errors.Is(err, stream.ErrLineTooLong):
			return fmt.Errorf("line longer than %d bytes", MaxLine)
		case ctx.Err() != nil:
			return nil
		case err != nil || len(line) == 0:
			// End of input or an empty line: leave, after checking that
			// the last classic reply shown was whole.
			return c.Leave()
		}
		v, err := c.Send(line)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(out, "%s\n", v); err != nil {
			return err
		}
	}
}

// watchSession is Session for a watcher.
func (c *Client) watchSession(ctx context.Context, out io.Writer, lines <-chan []byte, readErr <-chan error) error {
	frames := make(chan error, 1)
	go func() {
		for {
			_, v, err := c.Next()
			if err != nil {
				frames <- err
				return
			}
			fmt.Fprintf(out, "%s\n", v)
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
				return fmt.Errorf("line longer than %d bytes", MaxLine)
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
