package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/tcplab/tcplab/internal/safetext"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/stream"
)

// strclntFields names the flag that sets each Options field, for
// Validate's errors.
var strclntFields = map[string]string{"ReplyTimeout": "timeout", "ProbeTimeout": "probe-timeout", "MaxValue": "max-value"}

func runStrClnt(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("strclnt")
	watch := fs.Bool("watch", false, "print v live as any client changes it (framed mode)")
	classic := fs.Bool("classic", false, "do not probe: speak the tutorial's protocol")
	framed := fs.Bool("framed", false, "do not probe: require a tcplab strsvr")
	timeout := fs.Duration("timeout", sharedstring.DefaultReplyTimeout, "limit for connecting and for each reply")
	probe := fs.Duration("probe-timeout", sharedstring.DefaultProbeTimeout, "how long to wait for a tcplab strsvr to answer the UDP probe")
	maxValue := fs.Int("max-value", sharedstring.DefaultMaxValue, "largest v in bytes this client accepts")
	asJSON := fs.Bool("json", false, "for scripts: no prompt; send each line of standard input, then print one JSON object with the last v, ok and error (docs/json.md)")
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
	case *asJSON && *watch:
		return usagef("--json cannot go with --watch: --json prints the last v once, at the end")
	}
	if err := fs.refuseZero("timeout", "probe-timeout", "max-value"); err != nil {
		return err
	}
	opts := sharedstring.Options{Watch: *watch, DialTimeout: *timeout, ProbeTimeout: *probe,
		ReplyTimeout: *timeout, MaxValue: *maxValue}
	switch {
	case *classic:
		opts.Mode = sharedstring.Classic
	case *framed:
		opts.Mode = sharedstring.Framed
	}
	if err := fs.configError(opts.Validate(), strclntFields); err != nil {
		return err
	}
	if *asJSON {
		return strclntJSON(ctx, std, hostArg(pos[0]), pos[1], opts)
	}
	c, err := sharedstring.Dial(ctx, hostArg(pos[0]), pos[1], opts)
	if err != nil {
		return err
	}
	defer c.Close()
	// v is text from the network: on a terminal, escaped (see terminalSafe).
	return c.Session(ctx, std.in, terminalSafe(std.out))
}

// strclntReport is strclnt --json's one object (docs/json.md).
type strclntReport struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Mode    string `json:"mode,omitempty"` // "framed" or "classic", once connected
	Sent    int    `json:"sent"`           // lines sent, each answered
	V       string `json:"v"`              // the last v answered ("" if none)
	Bytes   int    `json:"bytes"`          // its length
	VBase64 string `json:"v_base64,omitempty"`
}

// strclntJSON is strclnt for scripts: each line of standard input is sent
// as a session would send it (up to an empty line or the end of input),
// and one JSON object says how it went and what v was last.
func strclntJSON(ctx context.Context, std stdio, host, port string, opts sharedstring.Options) error {
	var rep strclntReport
	err := func() error {
		c, err := sharedstring.Dial(ctx, host, port, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		defer context.AfterFunc(ctx, func() { c.Close() })() // a blocked reply ends with ctx
		rep.Mode = "classic"
		if c.Framed() {
			rep.Mode = "framed"
		}
		br := bufio.NewReader(std.in)
		for {
			line, err := stream.ReadLine(br, sharedstring.MaxLine)
			switch {
			case errors.Is(err, stream.ErrLineTooLong):
				return fmt.Errorf("line longer than %d bytes", sharedstring.MaxLine)
			case err != nil || len(line) == 0:
				return c.Leave() // a classic reply shown cut is an error
			}
			v, err := c.Send(line)
			if err != nil {
				return err
			}
			rep.Sent++
			rep.V, rep.Bytes = string(v), len(v)
			if !utf8.Valid(v) {
				rep.VBase64 = base64.StdEncoding.EncodeToString(v)
			} else {
				rep.VBase64 = ""
			}
		}
	}()
	rep.OK = err == nil
	if err != nil {
		rep.Error = safetext.OneLine(err.Error())
		if ctx.Err() != nil {
			rep.Error = context.Cause(ctx).Error()
		}
	}
	// v is other clients' bytes: escaped on a terminal (terminalJSON).
	if jerr := encodeJSONLine(std.out, rep); jerr != nil && err == nil {
		return jerr
	}
	return err
}
