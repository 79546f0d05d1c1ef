// Package fleet is the client side of svr's protocol (package status):
// wps.py's one question to one host (Ask), the same question to many hosts
// at once (AskFleet), and the load table of a fleet (SummarizeFleet),
// safely for servers that are not tcplab svr (see Probe and identify).
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/procps"
	"github.com/tcplab/tcplab/internal/server"
	"golang.org/x/sync/errgroup"
)

// Defaults for Options' zero fields.
const (
	// DefaultTimeout bounds the whole exchange with one host.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxAnswer bounds what a client keeps of one answer (the
	// fleet view holds every host's answer at once).
	DefaultMaxAnswer = 8 << 20
)

// Options are the client's settings, the same shape as
// sharedstring.Options and multicopy.FetchOptions: every field's zero
// value is its default, and a negative one means none.
type Options struct {
	// Timeout bounds the whole exchange with one host, the connect
	// included. Zero means DefaultTimeout; negative, no limit but ctx.
	Timeout time.Duration
	// MaxAnswer bounds the bytes of one answer; more is an error. Zero
	// means DefaultMaxAnswer; -1, no limit.
	MaxAnswer int64
}

// timeout is Timeout resolved; 0: none.
func (o Options) timeout() time.Duration { return server.Setting(o.Timeout, DefaultTimeout) }

// maxAnswer is MaxAnswer resolved; 0: none.
func (o Options) maxAnswer() int64 { return server.Setting(o.MaxAnswer, DefaultMaxAnswer) }

// Ask is wps.py: connect to host:port, send name exactly as given (no
// terminator, no half-close), and copy the answer to w until the server
// closes, within opts' Timeout and MaxAnswer. An error of w's (a full disk
// under standard output) is returned as it is: a local failure, never
// reported as the network's.
func Ask(ctx context.Context, host, port, name string, w io.Writer, opts Options) (int64, error) {
	return ask(ctx, host, port, name, opts.timeout(), w, opts.maxAnswer())
}

// ask is Ask with its limits resolved: timeout 0 or max 0, none.
func ask(ctx context.Context, host, port, name string, timeout time.Duration, w io.Writer, max int64) (int64, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn, err := endpoint.Dial(ctx, host, port, timeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := endpoint.StopOnCancel(ctx, conn)
	defer stop()
	addr := net.JoinHostPort(host, port)
	if _, err := conn.Write([]byte(name)); err != nil {
		return 0, fmt.Errorf("send to %s: %w", addr, ioCause(err, timeout))
	}
	r := io.Reader(conn)
	if max > 0 {
		r = io.LimitReader(conn, max+1)
	}
	out := &localWriter{w: w}
	rw := newRefusalWriter(out, name)
	n, err := io.Copy(rw, r)
	if out.err != nil {
		return n, out.err
	}
	if rerr := rw.end(addr); rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return n, fmt.Errorf("read from %s: %w", addr, ioCause(err, timeout))
	}
	if max > 0 && n > max {
		return n, fmt.Errorf("read from %s: answer over %d bytes", addr, max)
	}
	return n, nil
}

// localWriter remembers the error of the writer Ask copies to, so that
// it is told from the network's.
type localWriter struct {
	w   io.Writer
	err error
}

func (l *localWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil && l.err == nil {
		l.err = err
	}
	return n, err
}

func ioCause(err error, timeout time.Duration) error {
	if endpoint.IsTimeout(err) {
		if timeout > 0 {
			return fmt.Errorf("timed out after %s", timeout)
		}
		return errors.New("timed out")
	}
	return endpoint.Cause(err)
}

// HostAnswer is one host's answer in a fleet query.
type HostAnswer struct {
	Host    string   `json:"host"` // as given, host:port
	Command string   `json:"command"`
	Output  string   `json:"output,omitempty"`
	Error   string   `json:"error,omitempty"`
	Summary *Summary `json:"summary,omitempty"` // table mode only
}

// Summary is the row of the fleet table: what rup shows.
type Summary struct {
	UptimeSeconds float64    `json:"uptime_seconds,omitempty"`
	Uptime        string     `json:"uptime"` // as w prints it, e.g. "3 days, 2:04"
	Users         int        `json:"users"`
	Load          [3]float64 `json:"load"`
	Procs         int        `json:"procs,omitempty"` // 0 when unknown (w only)
	Source        string     `json:"source"`          // "json" or "w"
}

// fleetParallel caps the hosts asked at once.
const fleetParallel = 64

// AskFleet asks every host (each "host:port") for name in parallel, each
// within opts, and returns the answers in the order of hosts. A failed
// host has Error set; the others are unaffected. A name other than w or ps
// is sent only to a host that identify recognises as tcplab svr; any other
// host gets an error instead (see safeForAnyServer).
func AskFleet(ctx context.Context, hosts []string, name string, opts Options) []HostAnswer {
	timeout, max := opts.timeout(), opts.maxAnswer()
	return fleet(ctx, hosts, func(ctx context.Context, h, p string) HostAnswer {
		a := HostAnswer{Command: name}
		if !safeForAnyServer(name) {
			id, err := identify(ctx, h, p, timeout)
			var refused refusedError
			switch {
			case err != nil && (isConnectError(err) || errors.As(err, &refused)):
				a.Error = err.Error()
				return a
			case !id.Tcplab:
				a.Error = fmt.Sprintf("not known to be tcplab svr, so only w and ps are sent to it (a server like the tutorial's svr.py would hand %q to a shell)", name[:min(len(name), 2)])
				return a
			}
		}
		var buf bytes.Buffer
		_, err := ask(ctx, h, p, name, timeout, &buf, max)
		a.Output = buf.String()
		if err != nil {
			a.Error = err.Error()
		}
		return a
	})
}

// SummarizeFleet asks every host for its uptime, users and load: the
// structured form ("json") from a host known to be tcplab svr that allows
// it (see identify), else w's first line, which every w server sends (the
// tutorial's svr.py included).
func SummarizeFleet(ctx context.Context, hosts []string, opts Options) []HostAnswer {
	timeout, max := opts.timeout(), opts.maxAnswer()
	return fleet(ctx, hosts, func(ctx context.Context, h, p string) HostAnswer {
		id, err := identify(ctx, h, p, timeout)
		if err != nil && isConnectError(err) {
			return HostAnswer{Command: "w", Error: err.Error()}
		}
		var buf bytes.Buffer
		if id.Tcplab && slices.Contains(id.Allowed, "json") {
			_, err := ask(ctx, h, p, "json", timeout, &buf, max)
			var f procps.Facts
			if err == nil && json.Unmarshal(buf.Bytes(), &f) == nil && f.Time.Unix() > 0 {
				return HostAnswer{Command: "json", Summary: &Summary{
					UptimeSeconds: f.UptimeSeconds, Uptime: procps.FormatUptime(f.UptimeSeconds),
					Users: len(f.Users), Load: f.Load, Procs: f.Procs, Source: "json",
				}}
			}
			buf.Reset()
		}
		_, err = ask(ctx, h, p, "w", timeout, &buf, max)
		a := HostAnswer{Command: "w"}
		if err != nil {
			a.Error = err.Error()
			return a
		}
		line, _, _ := strings.Cut(buf.String(), "\n")
		if s, ok := summaryFromW(line); ok {
			a.Summary = &s
		} else {
			a.Error = fmt.Sprintf("no uptime line in the answer to w: %q", firstLine(buf.String(), 80))
		}
		return a
	})
}

// summaryFromW reads a Summary from w's first line.
func summaryFromW(line string) (Summary, bool) {
	u, ok := procps.ParseUptimeLine(line)
	if !ok {
		return Summary{}, false
	}
	return Summary{Uptime: u.Uptime, Users: u.Users, Load: u.Load, Source: "w"}, true
}

// safeForAnyServer reports whether name may be sent to a server that is
// not known to be tcplab svr: only "w" and "ps", the tutorial's own two.
// The tutorial's svr.py hands the first two bytes of any request to a
// shell, so a request for "json" makes it run "js", and "uptime" "up".
func safeForAnyServer(name string) bool { return name == "w" || name == "ps" }

// Probe is the request by which a client learns whether a server is
// tcplab svr, safely for any server that speaks the tutorial's protocol:
//
//	'p' 's' ' ' '#' 't' 'c' 'p' 'l' 'a' 'b' '\n'
//
// Whatever a server does with it, what runs is ps. A server that hands
// the first two bytes to a shell, as svr.py does (conn.recv(2) then
// os.popen), runs "ps"; one that hands the whole request to a shell (as
// sh -c, through C's system(), Python's os.popen, or as a script on a
// shell's standard input) runs "ps" too, the rest being a comment. (A NUL
// after "ps" would not do: every shell drops a NUL from its input and ran
// "pstcplab", and Python's os.popen raises on one, which kills a server
// like svr.py.) tcplab svr takes the '\n' as the end of the name (rule 1
// of the wire format) and answers at once with its refusal line, which no
// shell-backed server produces:
//
//	unknown command "ps #tcplab"; allowed: json, ps, w
//
// and that line lists what it allows. Every tcplab svr since the first
// answers the probe so, without knowing it is one. Exported as part of the
// wire format, for another client; AskFleet and SummarizeFleet send it.
const Probe = probeName + "\n"

const probeName = "ps #tcplab"

// identity is what identify learned of a server.
type identity struct {
	Tcplab  bool     // the server answered the probe as tcplab svr does
	Allowed []string // the names it allows, when Tcplab
}

// identify sends Probe to host:port and reads the answer (see Probe). A
// server that answers anything else is not tcplab svr, which is no error;
// err is set only when the exchange failed.
//
// The whole answer is read (up to DefaultMaxAnswer, within timeout), though only
// its first bytes are kept: a server that is not tcplab svr answers with
// ps's output, and svr.py, which writes it a line at a time and catches
// nothing, dies of the broken pipe if the client closes first.
func identify(ctx context.Context, host, port string, timeout time.Duration) (identity, error) {
	buf := &keepFirst{max: 4096}
	_, err := ask(ctx, host, port, Probe, timeout, buf, DefaultMaxAnswer)
	prefix := fmt.Sprintf("unknown command %q; allowed: ", probeName)
	line, ok := strings.CutPrefix(buf.b.String(), prefix)
	if !ok || buf.total != buf.b.Len() || !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
		return identity{}, err
	}
	names := strings.Split(strings.TrimSuffix(line, "\n"), ", ")
	for _, n := range names {
		if n == "" || strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r > '~' }) {
			return identity{}, err
		}
	}
	return identity{Tcplab: true, Allowed: names}, nil
}

// keepFirst keeps the first max bytes written to it and drops the rest.
type keepFirst struct {
	b     bytes.Buffer
	max   int
	total int // bytes written, kept or not
}

func (k *keepFirst) Write(p []byte) (int, error) {
	k.total += len(p)
	if room := k.max - k.b.Len(); room > 0 {
		k.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func firstLine(s string, max int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// isConnectError reports whether Ask could not connect at all (the name
// did not resolve, the connection was refused or timed out): the host is
// down or wrong, and the fleet view asks it nothing more. A TLS handshake
// that failed is not one: the host is up.
func isConnectError(err error) bool { return errors.Is(err, endpoint.ErrConnect) }

// fleet asks every host at once, at most fleetParallel at a time, and
// returns the answers in the order of hosts.
func fleet(ctx context.Context, hosts []string, ask func(ctx context.Context, host, port string) HostAnswer) []HostAnswer {
	out := make([]HostAnswer, len(hosts))
	var g errgroup.Group
	g.SetLimit(fleetParallel)
	for i, hp := range hosts {
		h, p, err := net.SplitHostPort(hp)
		if err != nil {
			out[i] = HostAnswer{Host: hp, Error: fmt.Sprintf("bad host:port %q", hp)}
			continue
		}
		g.Go(func() error {
			a := ask(ctx, h, p)
			a.Host = hp
			out[i] = a
			return nil
		})
	}
	g.Wait()
	return out
}
