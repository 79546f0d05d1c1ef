// Package nemesis is tcplab's checker of one promise under random faults:
// a client that ends cleanly holds exactly the right answer.
//
// A run takes a client kind and a seed. It builds a fresh lab link
// (internal/netlab), starts the pair's server as the built tcplab binary
// in side B, starts the client in side A, and from the same moment
// applies a fault schedule drawn from the seed (netlab.NewSchedule: loss
// bursts, one- and two-way blackouts of 0.5-20 s, ACK-path stalls, rate
// changes, MTU blackholes, resets). Then it judges the client:
//
//   - exact: it ended cleanly (exit 0; for the tutorial's Python clients,
//     a clean close, which is their exit 0) and what it printed is the
//     right answer;
//   - honest: it failed and said so (a non-zero exit), or it hung and was
//     killed at the run's limit (the tutorial's clients have no timeout);
//   - wrong: it ended cleanly with anything else. The promise is that
//     this never happens.
//
// The same kind and seed replay the same faults at the same moments (the
// transfer itself, and so the moment a fault hits it, still varies with
// the machine's load).
package nemesis

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/netlab"
)

// Kind is a client kind: which pair, and which client of it.
type Kind string

// The kinds of client a run can exercise.
const (
	TMC            Kind = "tmc"             // tcplab tmc against tcplab tms (one client)
	TMCPy          Kind = "tmc.py"          // the tutorial's tmc.py against tcplab tms
	SlowTyper      Kind = "slow"            // a client that writes its string a byte every 30 ms, against tcplab tms
	StrclntClassic Kind = "strclnt-classic" // tcplab strclnt --classic against tcplab strsvr
	StrclntFramed  Kind = "strclnt-framed"  // tcplab strclnt --framed against tcplab strsvr
	StrclntPy      Kind = "strclnt.py"      // the tutorial's strclnt.py against tcplab strsvr
	WPS            Kind = "wps"             // tcplab wps against tcplab svr
	WPSPy          Kind = "wps.py"          // the tutorial's wps.py against tcplab svr
	// StrclntRepeat is tcplab strclnt --classic against tcplab strsvr
	// with a v of one repeated letter, under a fault of one shape: the
	// downlink slowed to 200 kbit/s, then dark for longer than the
	// client's full-segment wait, so that the first reply is cut after
	// whole segments and its rest can come with the next reply looking
	// like one longer reply (issue 18's last case).
	StrclntRepeat Kind = "strclnt-repeat"
)

// Kinds is every kind, in a fixed order.
var Kinds = []Kind{TMC, TMCPy, SlowTyper, StrclntClassic, StrclntFramed, StrclntPy, WPS, WPSPy, StrclntRepeat}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("nemesis: no client kind %q (kinds: %v)", s, Kinds)
}

// Outcome is how a run ended.
type Outcome int

// The outcomes of a run.
const (
	Exact Outcome = iota
	Honest
	Wrong
)

func (o Outcome) String() string { return [...]string{"exact", "honest failure", "WRONG"}[o] }

// Env is what a run needs from its caller.
type Env struct {
	Tcplab   string // the built tcplab binary
	Python   string // python3
	Testdata string // the repository's testdata directory (the tutorial's clients)
	// Faults bounds the schedules drawn (zero: netlab's defaults, with
	// faults starting in the first 3 s of the transfer).
	Faults netlab.ScheduleOptions
	// Limit is how long a client may run after the last fault is lifted
	// before it is killed as hung (zero: 90 s).
	Limit time.Duration
}

// Result is one run's verdict.
type Result struct {
	Kind     Kind
	Seed     uint64
	Schedule netlab.Schedule
	Outcome  Outcome
	// Hit says a fault began while the client still ran (a run that
	// ended before the first fault proves nothing about faults).
	Hit    bool
	Took   time.Duration
	Detail string // for a failure: the client's last line, or what was wrong
}

// Replay is the line that reruns r: the environment variable the tests and
// the bench read.
func (r Result) Replay() string { return fmt.Sprintf("TCPLAB_NEMESIS=%s:%d", r.Kind, r.Seed) }

func (r Result) String() string {
	s := fmt.Sprintf("%s seed %d: %s in %s", r.Kind, r.Seed, r.Outcome, r.Took.Round(time.Millisecond))
	if !r.Hit {
		s += " (ended before the first fault)"
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s + " [" + faults(r.Schedule) + "] (" + r.Replay() + ")"
}

// port is the server's port: each run has its own namespaces.
const port = "2000"

// Schedule is the fault schedule a run of kind with seed applies. Unless
// Env.Faults says otherwise, faults start within the time the kind's
// exchange takes on a clean link, so that they hit it: 3 s for the typing
// clients (the slow typer, and strclnt's sessions, whose lines come a
// letter every 150 ms), 500 ms for tmc's 100 kB string and 3 MB answer,
// 150 ms for a wps request and its answer (the client's start included).
// StrclntRepeat has its own shape (see repeatSchedule).
func (e Env) Schedule(kind Kind, seed uint64) netlab.Schedule {
	o := e.Faults
	if kind == StrclntRepeat {
		return repeatSchedule(seed^kindSalt(kind), o)
	}
	if o.Span == 0 {
		switch kind {
		case TMC, TMCPy:
			o.Span = 500 * time.Millisecond
		case WPS, WPSPy:
			o.Span = 150 * time.Millisecond
		default:
			o.Span = 3 * time.Second
		}
	}
	return netlab.NewSchedule(seed^kindSalt(kind), o)
}

// repeatSchedule is StrclntRepeat's fault: the server's side (B→A)
// limited to 200 kbit/s from the start, where the first reply (40,001
// bytes) takes 1.6 s, and dark from a moment of that reply, most often
// after some of its full segments, for longer than the client's
// full-segment wait (3 s): from 3.2 s to o.MaxBlackout (at most 8 s, at
// least 3.5 s), drawn on a log scale. Longer, the server's backed-off
// retransmission comes after the client's reply timeout (30 s), an
// honest failure that tests nothing more. The rate is lifted with the
// blackout. Only the first reply can be cut so that its first part looks
// whole: each later one is one letter longer than the last, and a cut
// one is shorter than that. o.Span is not used: the moment is the first
// reply's.
func repeatSchedule(seed uint64, o netlab.ScheduleOptions) netlab.Schedule {
	r := rand.New(rand.NewPCG(seed, 0x726570656174)) // "repeat"
	hi := max(3500*time.Millisecond, min(cmp.Or(o.MaxBlackout, 8*time.Second), 8*time.Second))
	lo := 3200 * time.Millisecond
	// The first letter goes 150 ms after the start (the typing pace);
	// its reply ends about 1.6 s later.
	at := 400*time.Millisecond + time.Duration(r.Int64N(int64(1100*time.Millisecond)))
	dark := time.Duration(float64(lo) * math.Pow(float64(hi)/float64(lo), r.Float64())).Round(time.Millisecond)
	return netlab.Schedule{Seed: seed, Faults: []netlab.Fault{
		{Kind: netlab.RateChange, From: netlab.FromB, Rate: 200_000, At: 0, For: at + dark},
		{Kind: netlab.Blackout, From: netlab.FromB, At: at, For: dark},
	}}
}

// faults is s's faults, for a report line.
func faults(s netlab.Schedule) string {
	if len(s.Faults) == 0 {
		return "no faults"
	}
	parts := make([]string, len(s.Faults))
	for i, f := range s.Faults {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// kindSalt makes the schedules of different kinds with the same seed
// differ.
func kindSalt(k Kind) uint64 {
	h := sha256.Sum256([]byte(k))
	var x uint64
	for _, b := range h[:8] {
		x = x<<8 | uint64(b)
	}
	return x
}

// Run runs kind once with seed's schedule and judges the client. An error
// is the lab's own failure (no link, a server that would not start), not
// the client's: no verdict.
func Run(ctx context.Context, env Env, kind Kind, seed uint64) (Result, error) {
	res := Result{Kind: kind, Seed: seed, Schedule: env.Schedule(kind, seed)}
	l, err := netlab.New()
	if err != nil {
		return res, err
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := rand.New(rand.NewPCG(seed, 0x6e656d))
	c, err := prepare(ctx, env, l, kind, r)
	if err != nil {
		return res, err
	}
	defer c.server.stop()

	cli := l.A.Command(ctx, c.client[0], c.client[1:]...)
	if c.stdin != "" {
		// A line every 150 ms, as typed: the session lasts long enough
		// for the faults to hit it.
		pr, pw := io.Pipe()
		cli.Stdin = pr
		defer pr.Close()
		go func() {
			for _, line := range strings.SplitAfter(c.stdin, "\n") {
				select {
				case <-time.After(150 * time.Millisecond):
				case <-ctx.Done():
				}
				if _, err := io.WriteString(pw, line); err != nil {
					return
				}
			}
			pw.Close()
		}()
	}
	var out, errOut bytes.Buffer
	cli.Stdout, cli.Stderr = &out, &errOut
	faults := make(chan error, 1)
	faultCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	start := time.Now()
	if err := cli.Start(); err != nil {
		return res, fmt.Errorf("nemesis: start %s: %w", kind, err)
	}
	go func() { faults <- l.Run(faultCtx, res.Schedule) }()
	exited := make(chan error, 1)
	go func() { exited <- cli.Wait() }()
	limit := env.Limit
	if limit == 0 {
		limit = 90 * time.Second
	}
	var cerr error
	hung := false
	select {
	case cerr = <-exited:
	case <-time.After(res.Schedule.End() + limit):
		hung = true
		cli.Process.Kill()
		cerr = <-exited
	case <-ctx.Done():
		cli.Process.Kill()
		<-exited
		return res, ctx.Err()
	}
	res.Took = time.Since(start)
	res.Hit = len(res.Schedule.Faults) > 0 && res.Schedule.Faults[0].At < res.Took
	stopFaults()
	if ferr := <-faults; ferr != nil && !errors.Is(ferr, context.Canceled) {
		return res, fmt.Errorf("nemesis: faults: %w", ferr)
	}
	var exit *exec.ExitError
	switch {
	case hung:
		res.Outcome = Honest
		res.Detail = fmt.Sprintf("hung: killed %s after the last fault was lifted; it had printed %d bytes, ending %s; its last line on standard error: %s",
			limit, out.Len(), clip(tail(out.String(), 60)), lastLine(errOut.String()))
		return res, nil
	case cerr != nil && !errors.As(cerr, &exit):
		return res, fmt.Errorf("nemesis: run %s: %w", kind, cerr)
	case cerr != nil:
		res.Outcome = Honest
		res.Detail = lastLine(errOut.String())
		if res.Detail == "" {
			res.Detail = cerr.Error()
		}
		res.Detail += "; server: " + lastLine(c.server.log())
		return res, nil
	}
	if why := c.check(out.String()); why != "" {
		res.Outcome = Wrong
		res.Detail = "exit 0, but " + why + "; server: " + lastLine(c.server.log())
	}
	return res, nil
}

// runCase is one kind's set-up: the server (running), the client's
// command line and input, and the check of its output after exit 0.
type runCase struct {
	server *proc
	client []string
	stdin  string
	check  func(out string) string // "" if out is the right answer
}

// prepare starts kind's server in B and returns the run's case.
func prepare(ctx context.Context, env Env, l *netlab.Link, kind Kind, r *rand.Rand) (*runCase, error) {
	host := l.B.Addr.String()
	py := func(script string, args ...string) []string {
		return append([]string{env.Python, filepath.Join(env.Testdata, script)}, args...)
	}
	switch kind {
	case TMC, TMCPy, SlowTyper:
		copies, n := 30, 100_000
		if kind == SlowTyper {
			copies, n = 3, 100 // a byte every 30 ms: 3 s
		}
		msg := letters(r, n)
		srv, err := startServer(ctx, l, env.Tcplab, "tms", "--no-wait", "--copies", strconv.Itoa(copies), port)
		if err != nil {
			return nil, err
		}
		want := strings.Repeat(msg, copies)
		c := &runCase{server: srv}
		switch kind {
		case TMC:
			c.client = []string{env.Tcplab, "tmc", "--json", "--copies", strconv.Itoa(copies), host, port, msg}
			// tmc checks the content itself (whole copies, and as
			// many as --copies): its count must be right too.
			c.check = func(out string) string {
				var sum struct {
					Bytes int `json:"bytes"`
				}
				if err := json.Unmarshal([]byte(out), &sum); err != nil {
					return fmt.Sprintf("its --json output does not parse: %v", err)
				}
				if sum.Bytes != len(want) {
					return fmt.Sprintf("%d bytes, not %d", sum.Bytes, len(want))
				}
				return ""
			}
		case TMCPy:
			// tmc.py prints the first chunks and every chunk's size:
			// the sizes must add up.
			c.client = py("tmc.py", host, port, msg)
			c.check = func(out string) string {
				got := 0
				for _, m := range receivedRE.FindAllStringSubmatch(out, -1) {
					n, _ := strconv.Atoi(m[1])
					got += n
				}
				if got != len(want) {
					return fmt.Sprintf("%d bytes received, not %d", got, len(want))
				}
				return ""
			}
		case SlowTyper:
			c.client = py("slowtmc.py", host, port, msg, "0.03")
			sum := sha256.Sum256([]byte(want))
			c.check = func(out string) string {
				if got, wantLine := strings.TrimSpace(out), fmt.Sprintf("%d %s", len(want), hex.EncodeToString(sum[:])); got != wantLine {
					return fmt.Sprintf("received %q, want %q (bytes, sha256)", got, wantLine)
				}
				return ""
			}
		}
		return c, nil

	case StrclntClassic, StrclntFramed, StrclntPy, StrclntRepeat:
		srv, err := startServer(ctx, l, env.Tcplab, "strsvr", "--keep", port)
		if err != nil {
			return nil, err
		}
		// v starts long (20,000 bytes, many segments) for tcplab's
		// clients; the tutorial's strclnt.py reads a reply with one
		// recv(1024), so its v stays shorter than that.
		// StrclntRepeat's v and letters are all 'a': v repeats itself.
		var initial string
		typed := 20
		if kind == StrclntRepeat {
			// Two letters: the first reply cut, the second joined
			// with its rest, then the end. With more, a longer v taken
			// as whole makes the third reply, shorter, wait out the
			// reply timeout: an honest failure that hides the wrong v.
			typed = 2
		}
		pick := func(n int) string { return letters(r, n) }
		if kind == StrclntRepeat {
			pick = func(n int) string { return strings.Repeat("a", n) }
		}
		if kind != StrclntPy {
			initial = pick(20_000)
			if kind == StrclntRepeat {
				initial = pick(40_000) // a first reply of 1.6 s under its fault
			}
			if err := seed(ctx, l, env.Tcplab, initial); err != nil {
				srv.stop()
				return nil, err
			}
		}
		if kind == StrclntRepeat {
			// The rate of its schedule (repeatSchedule), in place before
			// the first reply: applied with the schedule, it can come
			// after it on a busy machine. The schedule finds it set and
			// lifts it with the blackout.
			if err := l.B.SetRate(200_000, 500*time.Millisecond); err != nil {
				srv.stop()
				return nil, err
			}
		}
		var in strings.Builder
		var wants []string
		v := initial
		for range typed {
			k := pick(1)
			in.WriteString(k + "\n")
			v += k
			wants = append(wants, v)
		}
		in.WriteString("\n")
		c := &runCase{server: srv, stdin: in.String()}
		switch kind {
		case StrclntClassic, StrclntRepeat:
			c.client = []string{env.Tcplab, "strclnt", "--classic", host, port}
		case StrclntFramed:
			c.client = []string{env.Tcplab, "strclnt", "--framed", host, port}
		default:
			c.client = py("strclnt.py", host, port)
		}
		// Every v printed must be right: after the i-th letter, the
		// initial v and the letters typed so far.
		c.check = func(out string) string {
			got := strings.Split(out, "enter a letter:")
			if len(got) != len(wants)+2 || got[0] != "" || got[len(got)-1] != "" {
				return fmt.Sprintf("%d prompts for %d letters: %s", len(got)-1, len(wants), clip(out))
			}
			for i, w := range wants {
				if g := strings.TrimSuffix(got[i+1], "\n"); g != w {
					return fmt.Sprintf("v after letter %d is %s, want %s", i+1, describe(g), describe(w))
				}
			}
			return ""
		}
		return c, nil

	case WPS, WPSPy:
		// svr reuses a command's output for --fresh, so the answer
		// fetched first from inside B (over its loopback, which the
		// faults do not touch) is the one the client must get.
		srv, err := startServer(ctx, l, env.Tcplab, "svr", "--fresh", "1h", port)
		if err != nil {
			return nil, err
		}
		ref := l.B.Command(ctx, env.Tcplab, "wps", host, port, "ps")
		want, err := ref.Output()
		if err != nil || len(want) == 0 {
			srv.stop()
			return nil, fmt.Errorf("nemesis: the reference ps answer: %v", err)
		}
		c := &runCase{server: srv}
		if kind == WPS {
			c.client = []string{env.Tcplab, "wps", host, port, "ps"}
		} else {
			c.client = py("wps.py", host, port, "ps")
		}
		c.check = func(out string) string {
			if out != string(want) {
				return fmt.Sprintf("the answer is %d bytes, not the %d of ps's (first difference at byte %d)", len(out), len(want), firstDiff(out, string(want)))
			}
			return ""
		}
		return c, nil
	}
	return nil, fmt.Errorf("nemesis: no client kind %q", kind)
}

var receivedRE = regexp.MustCompile(`(?m)^received (\d+) bytes$`)

// seed makes v initial: a framed strclnt inside B sends it over B's
// loopback.
func seed(ctx context.Context, l *netlab.Link, tcplab, initial string) error {
	cmd := l.B.Command(ctx, tcplab, "strclnt", "--framed", "--json", l.B.Addr.String(), port)
	cmd.Stdin = strings.NewReader(initial + "\n")
	out, err := cmd.Output()
	if err != nil || !bytes.Contains(out, []byte(`"ok":true`)) {
		return fmt.Errorf("nemesis: seed v: %v: %s", err, clip(string(out)))
	}
	return nil
}

// letters is n random lowercase letters.
func letters(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.IntN(26))
	}
	return string(b)
}

// proc is a server running in B.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

func (p *proc) stop() {
	p.cmd.Process.Kill()
	<-p.done
}

// startServer starts tcplab args... in B and waits until it listens.
func startServer(ctx context.Context, l *netlab.Link, tcplab string, args ...string) (*proc, error) {
	p := &proc{cmd: l.B.Command(ctx, tcplab, args...), done: make(chan struct{})}
	outPipe, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = p.cmd.Stdout // one pipe: the log and the listening line
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nemesis: start %s: %w", args[0], err)
	}
	listening := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(outPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.buf.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "listening") {
				once.Do(func() { close(listening) })
			}
		}
		io.Copy(io.Discard, outPipe)
		p.cmd.Wait()
	}()
	select {
	case <-listening:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("nemesis: %s exited before listening: %s", args[0], clip(p.log()))
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("nemesis: %s not listening after 30 s", args[0])
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return clip(s[strings.LastIndexByte(s, '\n')+1:])
}

// tail is the last n bytes of s.
func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// clip keeps s short enough for a report line.
func clip(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q... (%d bytes)", s[:200], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// describe names a long v by its length and ends.
func describe(v string) string {
	if len(v) <= 40 {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%d bytes %q...%q", len(v), v[:10], v[len(v)-10:])
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
