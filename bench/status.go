//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The svr/wps section: requests per second and latency for w and ps at 1,
// 50 and 500 concurrent clients, tcplab svr against the tutorial's svr.py
// (Python 3 port) in the same run.
func init() {
	register(section{name: "status", order: 20, run: benchStatus})
}

// statusResult is one cell of the table.
type statusResult struct {
	server, command string
	clients         int
	requests        int
	errors          int
	rate            float64 // completed requests per second
	p50, p99        time.Duration
	errKinds        map[string]int // error message → count
}

func benchStatus(ctx context.Context, env *benchEnv) (string, error) {
	dur := 3 * time.Second
	if env.quick {
		dur = time.Second
	}
	const reqTimeout = 5 * time.Second

	// Each target's argv ends with its port. The load stands for many
	// hosts but comes from one address, 127.0.0.1: the per-address limits
	// (--rate, --max-conns-per-addr) are off, or they would measure
	// themselves; the flood table below measures the per-address cap.
	targets := []struct {
		name string
		argv []string
	}{
		{"tcplab svr", []string{env.tcplab, "svr", "--rate", "0", "--max-conns-per-addr", "-1", "--max-conns", "2000"}},
		{"tcplab svr --fresh 0", []string{env.tcplab, "svr", "--rate", "0", "--max-conns-per-addr", "-1", "--max-conns", "2000", "--fresh", "0"}},
		{"svr.py (Python 3)", []string{"python3", filepath.Join(env.root, "testdata", "svr.py")}},
	}
	var results []statusResult
	var cpuLines []string
	for _, tg := range targets {
		// Standard output and error go to /dev/null (nil): both servers print
		// a line per client, and a pipe would make the benchmark pay for it.
		cmd, port, err := startOnFreePort(statusCommand(ctx, tg.argv), true)
		if err != nil {
			return "", fmt.Errorf("%s: %w", tg.name, err)
		}
		stopRSS := watchPeakRSS(cmd.Process.Pid) // VmHWM: the peak since start
		addr := "127.0.0.1:" + strconv.Itoa(port)
		for _, command := range []string{"w", "ps"} {
			for _, clients := range []int{1, 50, 500} {
				if strings.Contains(tg.name, "fresh") && clients != 50 {
					continue // the in-flight-only variant: one column is enough
				}
				env.logf("status: %s %s, %d clients", tg.name, command, clients)
				r := loadStatus(ctx, addr, command, clients, dur, reqTimeout)
				r.server = tg.name
				results = append(results, r)
			}
		}
		peakRSS := stopRSS()
		st := stopProcess(cmd, 5*time.Second)
		served := 0
		for _, r := range results {
			if r.server == tg.name {
				served += r.requests
			}
		}
		if served > 0 {
			cpuLines = append(cpuLines, fmt.Sprintf("%s: %.0f µs of CPU per answered request, %.0f MiB peak RSS", tg.name, cpuSeconds(st)/float64(served)*1e6, peakRSS))
		}
	}
	rounds := 5
	if env.quick {
		rounds = 1
	}
	ratios, err := statusRatioRounds(ctx, [2][]string{targets[0].argv, targets[2].argv}, rounds, dur, reqTimeout, env.logf)
	if err != nil {
		return "", err
	}
	var floods []floodResult
	for _, tg := range []struct {
		name string
		argv []string
	}{
		{"tcplab svr", []string{env.tcplab, "svr"}},
		{"tcplab svr --rate 0", []string{env.tcplab, "svr", "--rate", "0"}},
		{"tcplab svr --rate 0 --max-conns-per-addr -1 (no per-address cap)", []string{env.tcplab, "svr", "--rate", "0", "--max-conns-per-addr", "-1"}},
	} {
		env.logf("status: flood, %s", tg.name)
		r, err := floodStatus(ctx, tg.name, tg.argv, env.logf)
		if err != nil {
			return "", err
		}
		floods = append(floods, r)
	}
	return statusMarkdown(results, dur) + "\n" + ratios + "\nServer cost (CPU from its rusage, peak RSS from VmHWM): " + strings.Join(cpuLines, "; ") + ".\n\n" + floodMarkdown(floods), nil
}

// statusCommand is a status server's command: argv, then the port.
func statusCommand(ctx context.Context, argv []string) func(port string) *exec.Cmd {
	return func(port string) *exec.Cmd {
		args := append(slices.Clone(argv[1:]), port)
		return exec.CommandContext(ctx, argv[0], args...)
	}
}

// statusRatioRounds measures the target itself, tcplab svr's rate over
// svr.py's at 50 clients, in rounds: each round runs both servers on each
// command one after the other, in an order that swaps every round, and
// yields one ratio per command. The table above runs each server's cells
// in one stretch, so a burst of load from elsewhere on a shared machine can
// fall on one server only; a ratio within a round cannot be skewed that way
// for long, and the median of the rounds' ratios is reported with its
// range. Every run gets a fresh server: svr.py dies of the first client
// that closes before its answer is written (BrokenPipeError), which under
// this load happens within seconds, and a dead server would make every
// later round a zero.
func statusRatioRounds(ctx context.Context, argvs [2][]string, rounds int, dur, timeout time.Duration, logf func(string, ...any)) (string, error) {
	runOne := func(argv []string, command string) (float64, error) {
		cmd, port, err := startOnFreePort(statusCommand(ctx, argv), true)
		if err != nil {
			return 0, err
		}
		defer stopProcess(cmd, 5*time.Second)
		return loadStatus(ctx, "127.0.0.1:"+strconv.Itoa(port), command, 50, dur, timeout).rate, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The target, measured in %d rounds: each round runs tcplab svr and svr.py at 50 clients for %s each on `w` and on `ps`, one after the other, the order swapped every round, each on a fresh server.\n\n", rounds, dur)
	b.WriteString("| command | tcplab svr req/s (median) | svr.py req/s (median) | ratio: median of the rounds (range) | target |\n|---|--:|--:|--:|--:|\n")
	for _, command := range []string{"w", "ps"} {
		var ours, theirs, ratios []float64
		for round := range rounds {
			var rate [2]float64
			for k := range 2 {
				i := (k + round) % 2
				logf("status: ratio round %d/%d, %s, %s", round+1, rounds, command, argvs[i][0])
				r, err := runOne(argvs[i], command)
				if err != nil {
					return "", err
				}
				rate[i] = r
			}
			ours, theirs = append(ours, rate[0]), append(theirs, rate[1])
			if rate[1] > 0 {
				ratios = append(ratios, rate[0]/rate[1])
			}
		}
		slices.Sort(ours)
		slices.Sort(theirs)
		slices.Sort(ratios)
		cell := "- (svr.py answered nothing)"
		if len(ratios) > 0 {
			cell = fmt.Sprintf("%.0f× (%.0f–%.0f)", ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %s | 50× |\n", command, ours[len(ours)/2], theirs[len(theirs)/2], cell)
	}
	return b.String(), nil
}

func firstBytes(b []byte, n int) string { return string(b[:min(len(b), n)]) }

func statusMarkdown(results []statusResult, dur time.Duration) string {
	var b strings.Builder
	b.WriteString("## svr / wps: remote w and ps (tutorial section 5.2)\n\n")
	fmt.Fprintf(&b, "Each cell: N clients in a loop of connect, send the command, read to end of file, for %s (5 s timeout per request), on two threads, each an event loop of nonblocking sockets and epoll (bench/statusgen.go), so that the load generator takes as little as it can of the two cores it shares with the server. req/s counts the answers completed within the %s; requests and the latencies include those still in flight at the end; errors are timeouts, failed connects and wrong answers. tcplab svr runs with --rate 0 --max-conns-per-addr -1 --max-conns 2000: the clients stand for many hosts but all come from 127.0.0.1.\n\n", dur, dur)
	b.WriteString("| server | command | clients | requests | req/s | p50 | p99 | errors |\n|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.0f | %s | %s | %s |\n", r.server, r.command, r.clients, r.requests, r.rate, ms(r.p50), ms(r.p99), errorCell(r))
	}
	find := func(server, command string, clients int) *statusResult {
		for i := range results {
			if results[i].server == server && results[i].command == command && results[i].clients == clients {
				return &results[i]
			}
		}
		return nil
	}
	b.WriteString("\n")
	for _, command := range []string{"w", "ps"} {
		ours, py := find("tcplab svr", command, 50), find("svr.py (Python 3)", command, 50)
		if ours != nil && py != nil && py.rate > 0 {
			fmt.Fprintf(&b, "At 50 clients, `%s`: tcplab svr serves %.0f× the requests per second of svr.py (target: 50×).\n", command, ours.rate/py.rate)
		}
	}
	b.WriteString(`
What bounds the numbers: svr.py forks a shell and the command for every
request, one client at a time (listen(1), no threads), so its rate is the
rate of fork+exec of w or ps, and at 500 clients most connections wait in
(or overflow) its one-deep backlog and time out; once a client it is still
writing to has gone, it dies of a BrokenPipeError, and every connect after
that is refused. tcplab svr runs the command
at most once per freshness window (--fresh, 1 s) and per request in flight,
and serves every other request from that output, so its rate is bound by
connection setup on loopback and the two cores shared by server and
clients. The "--fresh 0" row turns the reuse off: only requests that arrive
while a run is in flight share it.
`)
	return b.String()
}

// errorCell is the error count with its most common kind.
func errorCell(r statusResult) string {
	if r.errors == 0 {
		return "0"
	}
	top, n := "", 0
	for k, v := range r.errKinds {
		if v > n || (v == n && k < top) {
			top, n = k, v
		}
	}
	return fmt.Sprintf("%d (%d× %s)", r.errors, n, top)
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}
