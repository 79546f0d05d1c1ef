package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tcplab/tcplab/status"
	"github.com/tcplab/tcplab/status/fleet"
)

func runWPS(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("wps")
	hostList := new(onceString)
	fs.Var(hostList, "hosts", "comma-separated `host:port` list: ask them all in parallel (once: the list is one value)")
	timeout := fs.Duration("timeout", 10*time.Second, "per-host limit for connecting and the whole answer (0: none)")
	asJSON := fs.Bool("json", false, "print the answers as JSON")
	tlsFlags := addWPSTLSFlags(fs)
	manyHosts := hostsGiven(args)
	minArgs, maxArgs := 3, 3
	if manyHosts {
		minArgs, maxArgs = 0, 1
	}
	pos, err := fs.parse(std, args, minArgs, maxArgs)
	if err != nil {
		return err
	}
	if err := tlsFlags.check(); err != nil {
		return err
	}
	var hosts []string
	if manyHosts {
		if hosts, err = parseHosts(hostList.value); err != nil {
			return err
		}
	} else if err := checkHost(hostArg(pos[0])); err != nil {
		return err
	} else if err := checkDialPort(pos[1]); err != nil {
		return err
	}
	if ctx, err = tlsFlags.apply(ctx); err != nil {
		return err
	}
	if !manyHosts {
		return askOne(ctx, std, hostArg(pos[0]), pos[1], pos[2], *timeout, *asJSON)
	}
	var answers []fleet.HostAnswer
	if len(pos) == 1 {
		answers = fleet.AskFleet(ctx, hosts, pos[0], *timeout)
	} else {
		answers = fleet.SummarizeFleet(ctx, hosts, *timeout)
	}
	if ctx.Err() != nil {
		return ctx.Err() // interrupted: the hosts did not fail, we stopped asking
	}
	switch {
	case *asJSON:
		reports := make([]wpsReport, len(answers))
		for i, a := range answers {
			reports[i] = wpsReport{OK: a.Error == "", HostAnswer: a}
		}
		if err := encodeJSON(std.out, reports); err != nil {
			return err
		}
	case len(pos) == 1:
		if err := printAnswers(std.out, std.err, answers); err != nil {
			return err
		}
	default:
		if err := printTable(std.out, std.err, answers); err != nil {
			return err
		}
	}
	for _, a := range answers {
		if a.Error == "" {
			return nil
		}
	}
	return errors.New("every host failed")
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
func askOne(ctx context.Context, std stdio, host, port, name string, timeout time.Duration, asJSON bool) error {
	if name == "" {
		return usagef("COMMAND must not be empty")
	}
	if !asJSON {
		out := terminalSafe(std.out)
		head := &answerHead{w: out}
		_, err := fleet.Ask(ctx, host, port, name, timeout, head, 0)
		if ferr := flushTerminal(out); err == nil {
			err = ferr
		}
		if err == nil && head.isNotTLS() {
			err = notTLSServer(host, port)
		}
		return err
	}
	var buf strings.Builder
	_, err := fleet.Ask(ctx, host, port, name, timeout, &buf, fleet.MaxAnswer)
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
			fmt.Fprintf(errw, "%s: error: %s\n", a.Host, oneLine(a.Error))
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
			fmt.Fprintf(errw, "%s: error: %s\n", a.Host, oneLine(a.Error))
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
