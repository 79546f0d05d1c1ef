package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/tcplab/tcplab/internal/safetext"
	"github.com/tcplab/tcplab/status"
	"github.com/tcplab/tcplab/status/fleet"
)

// wpsConfig is what wps's flags and arguments say.
type wpsConfig struct {
	hostList   onceString
	opts       fleet.Options
	json       bool
	tls        wpsTLSFlags
	manyHosts  bool
	hosts      []string // --hosts, parsed
	host, port string   // without --hosts
	name       string   // the COMMAND, "" for the fleet table
}

func (c *wpsConfig) flags(fs *flagSet) {
	fs.Var(&c.hostList, "hosts", "comma-separated `host:port` list: ask them all in parallel (once: the list is one value)")
	fs.DurationVar(&c.opts.Timeout, "timeout", fleet.DefaultTimeout, "per-host limit for connecting and the whole answer (0: none)")
	fs.BoolVar(&c.json, "json", false, "print the answers as JSON")
	c.tls = addWPSTLSFlags(fs)
}

// validate checks the arguments and flags, before anyone is asked.
func (c *wpsConfig) validate(pos []string) (err error) {
	if err := c.tls.check(); err != nil {
		return err
	}
	if c.opts.Timeout == 0 {
		c.opts.Timeout = -1 // --timeout 0: none
	}
	if c.manyHosts {
		if len(pos) == 1 {
			c.name = pos[0]
		}
		c.hosts, err = parseHosts(c.hostList.value)
		return err
	}
	c.host, c.port, c.name = hostArg(pos[0]), pos[1], pos[2]
	if err := checkHost(c.host); err != nil {
		return err
	}
	return checkDialPort(c.port)
}

func runWPS(ctx context.Context, std stdio, args []string) error {
	var c wpsConfig
	fs := newFlagSet("wps")
	c.flags(fs)
	c.manyHosts = hostsGiven(args)
	minArgs, maxArgs := 3, 3
	if c.manyHosts {
		minArgs, maxArgs = 0, 1
	}
	pos, err := fs.parse(std, args, minArgs, maxArgs)
	if err != nil {
		return err
	}
	if err := c.validate(pos); err != nil {
		return err
	}
	if ctx, err = c.tls.apply(ctx); err != nil {
		return err
	}
	if !c.manyHosts {
		return askOne(ctx, std, c.host, c.port, c.name, c.opts, c.json)
	}
	var answers []fleet.HostAnswer
	if len(pos) == 1 {
		answers = fleet.AskFleet(ctx, c.hosts, c.name, c.opts)
	} else {
		answers = fleet.SummarizeFleet(ctx, c.hosts, c.opts)
	}
	if ctx.Err() != nil {
		return ctx.Err() // interrupted: the hosts did not fail, we stopped asking
	}
	if err := c.print(std, answers, len(pos) == 1); err != nil {
		return err
	}
	for _, a := range answers {
		if a.Error == "" {
			return nil
		}
	}
	return errors.New("every host failed")
}

// print writes the fleet's answers: JSON, each host's output (asked, a
// COMMAND was given) or the load table.
func (c *wpsConfig) print(std stdio, answers []fleet.HostAnswer, asked bool) error {
	switch {
	case c.json:
		reports := make([]wpsReport, len(answers))
		for i, a := range answers {
			reports[i] = wpsReport{OK: a.Error == "", HostAnswer: a}
		}
		return encodeJSON(std.out, reports)
	case asked:
		return printAnswers(std.out, std.err, answers)
	}
	return printTable(std.out, std.err, answers)
}

// parseHosts parses --hosts. A malformed entry is the caller's typing,
// not a host that is down: it is refused before anyone is asked.
func parseHosts(s string) ([]string, error) {
	var list []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		_, port, err := net.SplitHostPort(h)
		if err != nil {
			if strings.Count(h, ":") > 1 && !strings.Contains(h, "[") {
				return nil, usagef("--hosts: %q: write an IPv6 address in brackets, as [::1]:2000", h)
			}
			return nil, usagef("--hosts: %q is not host:port", h)
		}
		if err := checkDialPort(port); err != nil {
			return nil, usagef("--hosts: %q: %v", h, err)
		}
		list = append(list, h)
	}
	if len(list) == 0 {
		return nil, usagef("--hosts: no hosts given")
	}
	return list, nil
}

// hostsGiven reports whether --hosts is among args, which changes how many
// positionals are wanted.
func hostsGiven(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-hosts" || a == "--hosts" || strings.HasPrefix(a, "-hosts=") || strings.HasPrefix(a, "--hosts=") {
			return true
		}
	}
	return false
}

// askOne is wps.py: the answer goes to stdout as it arrives.
func askOne(ctx context.Context, std stdio, host, port, name string, opts fleet.Options, asJSON bool) error {
	if name == "" {
		return usagef("COMMAND must not be empty")
	}
	if !asJSON {
		out := terminalSafe(std.out)
		head := &answerHead{w: out}
		opts.MaxAnswer = -1 // streamed, not kept
		_, err := fleet.Ask(ctx, host, port, name, head, opts)
		if ferr := flushTerminal(out); err == nil {
			err = ferr
		}
		if err == nil && head.isNotTLS() {
			err = notTLSServer(host, port)
		}
		return err
	}
	var buf strings.Builder
	_, err := fleet.Ask(ctx, host, port, name, &buf, opts)
	if err == nil && buf.String() == status.NotTLSAnswer {
		err = notTLSServer(host, port)
	}
	a := fleet.HostAnswer{Host: net.JoinHostPort(host, port), Command: name, Output: buf.String()}
	if err != nil {
		a.Error = err.Error()
	}
	if jerr := encodeJSON(std.out, wpsReport{OK: err == nil, HostAnswer: a}); jerr != nil {
		return jerr
	}
	return err
}

// wpsReport is one host's answer as --json prints it (docs/json.md): ok
// is false exactly when error says why.
type wpsReport struct {
	OK bool `json:"ok"`
	fleet.HostAnswer
}

// notTLSServer is wps's error when a TLS svr answered a plaintext request
// with its one line (status.NotTLSAnswer): that line is printed, but it is no
// answer, and a script must see wps fail.
func notTLSServer(host, port string) error {
	return fmt.Errorf("%s speaks TLS only: add --tls-ca FILE (the CA of its certificate)", net.JoinHostPort(host, port))
}

// answerHead passes an answer through to w, keeping its first bytes to
// tell a TLS svr's refusal line from an answer.
type answerHead struct {
	w    io.Writer
	head []byte
	n    int
}

func (a *answerHead) Write(p []byte) (int, error) {
	if room := len(status.NotTLSAnswer) + 1 - len(a.head); room > 0 {
		a.head = append(a.head, p[:min(room, len(p))]...)
	}
	n, err := a.w.Write(p)
	a.n += n
	return n, err
}

func (a *answerHead) isNotTLS() bool {
	return a.n == len(status.NotTLSAnswer) && string(a.head) == status.NotTLSAnswer
}

// printAnswers prints each host's answer under a header on w (escaped on
// a terminal), and each failed host's one line on errw (standard error:
// the answers on standard output stay what the hosts sent). It returns
// the first error writing to w: output that cannot be written is a
// failure of its own (exit 1), not a host's.
func printAnswers(w, errw io.Writer, answers []fleet.HostAnswer) error {
	out := &firstError{w: terminalSafe(w)}
	for i, a := range answers {
		if a.Error != "" {
			fmt.Fprintf(errw, "%s: error: %s\n", a.Host, safetext.OneLine(a.Error))
			continue
		}
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "== %s ==\n", a.Host)
		io.WriteString(out, a.Output)
		flushTerminal(out.w)
		if a.Output != "" && !strings.HasSuffix(a.Output, "\n") {
			fmt.Fprintln(out)
		}
	}
	return out.err
}

// printTable prints the fleet's load table on w and each failed host's
// line on errw, and returns the first error writing to w.
func printTable(w, errw io.Writer, answers []fleet.HostAnswer) error {
	out := &firstError{w: terminalSafe(w)}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tUP\tUSERS\tLOAD 1\t5\t15\tPROCS")
	for _, a := range answers {
		if a.Error != "" || a.Summary == nil {
			continue
		}
		s := a.Summary
		procs := "-"
		if s.Procs > 0 {
			procs = fmt.Sprint(s.Procs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%s\n", a.Host, s.Uptime, s.Users, s.Load[0], s.Load[1], s.Load[2], procs)
	}
	tw.Flush()
	for _, a := range answers {
		if a.Error != "" {
			fmt.Fprintf(errw, "%s: error: %s\n", a.Host, safetext.OneLine(a.Error))
		}
	}
	return out.err
}

// firstError passes writes on to w until one fails, then fails every
// later one with that error, which it keeps for the caller.
type firstError struct {
	w   io.Writer
	err error
}

func (f *firstError) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.w.Write(p)
	f.err = err
	return n, err
}

// onceString is a string flag that may be given once: a second --hosts
// silently replaced the first list, where a user may have meant both.
type onceString struct {
	value string
	set   bool
}

func (o *onceString) String() string { return o.value }
func (o *onceString) Get() any       { return o.value }

func (o *onceString) Set(s string) error {
	if o.set {
		return errGivenTwice
	}
	o.value, o.set = s, true
	return nil
}

var errGivenTwice = errors.New("given twice: give one comma-separated list")
