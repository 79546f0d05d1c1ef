//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/internal/redisproc"
	"github.com/tcplab/tcplab/sharedstring"
)

// The idlemem section (issues 13 and 22): what a quiet client costs each
// server, against redis-server in the same run, and what the servers do
// for clients that talk, so that the first is not bought with the second.
//
// Memory: n connections to a fresh server, each after its protocol's
// first exchange (or none), then silent. A row is the slope of the
// server's resident set (VmRSS) between n/2 and n connections, each
// settled. Settled means settleFor after the last client: redis-server frees an idle
// client's query and reply buffers after 2 and 5 s, and its allocator
// returns freed pages after 10 s; tcplab parks a silent client after
// ParkAfter (1 s) and returns freed memory 5 s after a burst of parking.
// Kernel socket buffers are in no row (they are the same for every
// server).
//
// Letters: the sharedstring section's rows for strsvr (epoll load
// generator, classic and framed) and Redis (MULTI APPEND GET EXEC per
// letter), at 2, 100, 1,000 and 5,000 clients, rounds alternating; and
// the CPU strsvr uses over 10 s with 1,000 clients silent after a letter.
//
// With -baseline REV every strsvr, tms and svr row is run with tcplab
// built at REV too, alternating, so before and after are measured in the
// same sitting.
func init() {
	register(section{name: "idlemem", order: 61, run: benchIdleMem, also: []string{"docs/reliability.md"}})
}

// idleKind is one kind of quiet client.
type idleKind struct {
	name  string
	redis bool // the row for redis-server; argv unused
	argv  func(n int, port string) []string
	hello func(c net.Conn, i int) error // nil: connect and say nothing
}

func idleKinds() []idleKind {
	strsvr := func(n int, port string) []string {
		return []string{"strsvr", "--keep", "--no-discovery", "--max-conns", strconv.Itoa(n + 100),
			"--max-conns-per-addr", "-1", "--max-watchers", strconv.Itoa(n + 1), port}
	}
	return []idleKind{
		{name: "strsvr, classic, connected and silent", argv: strsvr},
		{name: "strsvr, classic, silent after one letter", argv: strsvr, hello: func(c net.Conn, i int) error {
			if _, err := c.Write([]byte("a")); err != nil {
				return err
			}
			_, err := io.ReadFull(c, make([]byte, i+1)) // v after this letter
			return err
		}},
		{name: "strsvr, framed, silent after one letter", argv: strsvr, hello: func(c net.Conn, i int) error {
			if _, err := c.Write(append(sharedstring.Hello(0), 'b')); err != nil {
				return err
			}
			// The 'h' frame, then the 'r' frame carrying v (i+1 bytes).
			_, err := io.ReadFull(c, make([]byte, 2*sharedstring.FrameHeaderLen+i+1))
			return err
		}},
		{name: "strsvr, watcher of a v that does not change", argv: strsvr, hello: func(c net.Conn, _ int) error {
			if _, err := c.Write(sharedstring.Hello(sharedstring.FlagWatch)); err != nil {
				return err
			}
			_, err := io.ReadFull(c, make([]byte, sharedstring.FrameHeaderLen)) // 'h'; v is empty
			return err
		}},
		{name: "tms --keep, waiting for its string", argv: func(n int, port string) []string {
			return []string{"tms", "--keep", "--max-conns", strconv.Itoa(n + 100), "--max-conns-per-addr", "-1", "--read-timeout", "10m", port}
		}},
		{name: "svr, waiting for a request", argv: func(n int, port string) []string {
			return []string{"svr", "--max-conns", strconv.Itoa(n + 100), "--max-conns-per-addr", "-1", "--read-timeout", "10m", port}
		}},
		{name: "redis-server, connected and silent", redis: true},
		{name: "redis-server, silent after PING", redis: true, hello: func(c net.Conn, _ int) error {
			if _, err := c.Write([]byte("PING\r\n")); err != nil {
				return err
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil && line != "+PONG\r\n" {
				err = fmt.Errorf("PING answered %q", line)
			}
			return err
		}},
	}
}

func benchIdleMem(ctx context.Context, env *benchEnv) (string, error) {
	n := 10000
	settleFor := 15 * time.Second
	rounds := 3
	perClient := map[int]int{2: 5000, 100: 100, 1000: 20, 5000: 8}
	if env.quick {
		n, settleFor, rounds = 500, 8*time.Second, 1
		perClient = map[int]int{2: 200, 100: 5, 1000: 2, 5000: 1}
	}
	limit := raiseFileLimit(n + 1000)
	type binary struct{ name, path string }
	bins := []binary{{"this build", env.tcplab}}
	if env.baseline != "" {
		bins = append(bins, binary{env.baselineRev, env.baseline})
	}

	// Memory.
	var b strings.Builder
	fmt.Fprintf(&b, "### Memory per quiet connection\n\nUp to %d connections at once to a fresh server each, every one after its protocol's first exchange (or none) and then silent. The cost of one is the slope of the server's resident memory (VmRSS) between %d and %d connections, each count settled for %s, so that what the server's start-up left cancels out:\n\n", n, n/2, n, settleFor)
	b.WriteString("| server, client | build | resident memory per connection | vs redis-server |\n|---|---|---:|---:|\n")
	redisPer := map[bool]float64{} // by whether the client spoke first
	type memCell struct {
		kind idleKind
		bin  string
		per  float64
	}
	var cells []memCell
	for _, k := range idleKinds() {
		if !k.redis {
			continue
		}
		per, err := idleRSS(ctx, env, k, "", n, settleFor)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k.name, err)
		}
		redisPer[k.hello != nil] = per
		cells = append(cells, memCell{k, "", per})
	}
	for _, k := range idleKinds() {
		if k.redis {
			continue
		}
		for _, bin := range bins {
			per, err := idleRSS(ctx, env, k, bin.path, n, settleFor)
			if err != nil {
				return "", fmt.Errorf("%s (%s): %w", k.name, bin.name, err)
			}
			cells = append(cells, memCell{k, bin.name, per})
		}
	}
	for _, c := range cells {
		if c.kind.redis {
			fmt.Fprintf(&b, "| %s | - | %.0f bytes | - |\n", c.kind.name, c.per)
			continue
		}
		// A client that spoke first is compared with Redis's after PING,
		// a silent one with Redis's silent one.
		r := redisPer[c.kind.hello != nil]
		fmt.Fprintf(&b, "| %s | %s | %.0f bytes | %.2f× |\n", c.kind.name, c.bin, c.per, c.per/r)
	}
	fmt.Fprintf(&b, "\nA client that spoke first (a letter, a hello) is compared with Redis's after PING, a silent one with Redis's silent one. Kernel socket buffers are in no row. The open-file limit of this process was %d", limit)
	if limit < 100000+1000 {
		b.WriteString(", so 100,000 connections could not be measured here (the hard limit cannot be raised without CAP_SYS_RESOURCE)")
	}
	b.WriteString(".\n\n")

	// Letters.
	redisPort, err := freePort()
	if err != nil {
		return "", err
	}
	rs, err := redisproc.Start(filepath.Join(env.tmp, "redis-idlemem"), redisPort, "--maxclients", "10100")
	if err != nil {
		return "", err
	}
	defer rs.Stop()
	type rateKey struct {
		clients int
		target  string
	}
	rates := map[rateKey][]float64{}
	targets := []string{}
	for _, bin := range bins {
		targets = append(targets, "strsvr classic, "+bin.name, "strsvr framed, "+bin.name)
	}
	targets = append(targets, "Redis MULTI APPEND GET EXEC")
	for round := range rounds {
		for _, clients := range []int{2, 100, 1000, 5000} {
			letters := perClient[clients]
			// Alternate which build goes first from round to round.
			order := slices.Clone(bins)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, bin := range order {
				for _, framed := range []bool{false, true} {
					name := "strsvr classic, " + bin.name
					if framed {
						name = "strsvr framed, " + bin.name
					}
					env.logf("idlemem: %s, %d clients, round %d", name, clients, round+1)
					cell, err := strsvrLetters(ctx, bin.path, clients, letters, framed)
					if err != nil {
						return "", fmt.Errorf("%s, %d clients: %w", name, clients, err)
					}
					rates[rateKey{clients, name}] = append(rates[rateKey{clients, name}], cell.rate())
				}
			}
			env.logf("idlemem: Redis, %d clients, round %d", clients, round+1)
			cell, err := benchRawRedis(ctx, rs, fmt.Sprintf("idlemem:%d:%d", clients, round), clients, letters)
			if err != nil {
				return "", fmt.Errorf("letters to Redis, %d clients: %w", clients, err)
			}
			rates[rateKey{clients, targets[len(targets)-1]}] = append(rates[rateKey{clients, targets[len(targets)-1]}], cell.rate())
		}
	}
	fmt.Fprintf(&b, "### Letters per second, in the same run\n\nEach client sends a letter and waits for its reply (%d, %d, %d and %d letters per client at 2, 100, 1,000 and 5,000 clients), v empty at the start of each run; strsvr driven by the sharedstring section's epoll load generator, Redis by go-redis. Median of %d rounds (range), the builds alternating in order:\n\n", perClient[2], perClient[100], perClient[1000], perClient[5000], rounds)
	b.WriteString("| target | 2 clients | 100 clients | 1,000 clients | 5,000 clients |\n|---|---:|---:|---:|---:|\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "| %s |", t)
		for _, clients := range []int{2, 100, 1000, 5000} {
			r := rates[rateKey{clients, t}]
			slices.Sort(r)
			fmt.Fprintf(&b, " %.0f (%.0f-%.0f) |", r[len(r)/2], r[0], r[len(r)-1])
		}
		b.WriteString("\n")
	}

	// Idle CPU.
	b.WriteString("\n### Idle CPU\n\n1,000 clients, each silent after one letter, settled as above; CPU over the next 10 s:\n\n| server | build | CPU |\n|---|---|---:|\n")
	for _, bin := range bins {
		cpu, err := idleStrsvrCPU(ctx, bin.path, 1000, settleFor, 10*time.Second)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "| strsvr --keep | %s | %.1f%% |\n", bin.name, cpu)
	}
	b.WriteString("\nHow a quiet connection is kept, and what each part of it costs: docs/reliability.md, \"Memory per idle connection\".\n")
	return b.String(), nil
}

// idleRSS opens n connections of kind k to a fresh server (tcplab at bin,
// or redis-server) and returns its resident memory per connection once
// settled.
func idleRSS(ctx context.Context, env *benchEnv, k idleKind, bin string, n int, settleFor time.Duration) (float64, error) {
	var pid int
	var addr string
	if k.redis {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		rs, err := redisproc.Start(filepath.Join(env.tmp, fmt.Sprintf("redis-idle-%d", port)), port, "--maxclients", strconv.Itoa(n+100))
		if err != nil {
			return 0, err
		}
		defer rs.Stop()
		pid, addr = rs.Pid(), rs.Addr()
	} else {
		cmd, port, err := startOnFreePort(func(port string) *exec.Cmd {
			c := exec.CommandContext(ctx, bin, k.argv(n, port)...)
			c.Stderr = io.Discard
			return c
		}, false)
		if err != nil {
			return 0, err
		}
		defer stopProcess(cmd, 5*time.Second)
		pid, addr = cmd.Process.Pid, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	// The cost is the slope between n/2 and n connections, each count
	// settled: what the server's start-up left (garbage it may or may not
	// have returned by then) is in both and cancels out.
	half := n / 2
	first, err := openIdle(addr, half, k.hello, 0)
	if err != nil {
		return 0, err
	}
	defer closeAll(first)
	time.Sleep(settleFor) // the pause is the point: the servers settle
	before := vmRSS(pid)
	second, err := openIdle(addr, n-half, k.hello, half)
	if err != nil {
		return 0, err
	}
	defer closeAll(second)
	time.Sleep(settleFor)
	after := vmRSS(pid)
	env.logf("idlemem: %s: RSS %d with %d connections, %d with %d", k.name, before, half, after, n)
	return float64(after-before) / float64(n-half), nil
}

// strsvrLetters runs the epoll load generator against a fresh strsvr
// --keep of the binary bin.
func strsvrLetters(ctx context.Context, bin string, clients, letters int, framed bool) (redisCell, error) {
	cmd, port, err := startOnFreePort(func(p string) *exec.Cmd {
		return exec.CommandContext(ctx, bin, "strsvr", "--keep", "--max-conns", "6000", "--max-conns-per-addr", "-1", p)
	}, true)
	if err != nil {
		return redisCell{}, err
	}
	defer stopProcess(cmd, 5*time.Second)
	return loadgenRun{addr: "127.0.0.1:" + strconv.Itoa(port), clients: clients, letters: letters,
		framed: framed, limit: 2 * time.Minute, svrPids: []int{cmd.Process.Pid}, cpu: -1}.run()
}

// idleStrsvrCPU is the CPU strsvr (bin) uses over d, in percent of one
// core, with clients silent after one letter each, settled for settleFor.
func idleStrsvrCPU(ctx context.Context, bin string, clients int, settleFor, d time.Duration) (float64, error) {
	cmd, port, err := startOnFreePort(func(p string) *exec.Cmd {
		return exec.CommandContext(ctx, bin, "strsvr", "--keep", "--no-discovery", "--max-conns-per-addr", "-1", p)
	}, false)
	if err != nil {
		return 0, err
	}
	defer stopProcess(cmd, 5*time.Second)
	conns, err := openIdle("127.0.0.1:"+strconv.Itoa(port), clients, idleKinds()[1].hello, 0)
	if err != nil {
		return 0, err
	}
	defer closeAll(conns)
	time.Sleep(settleFor) // the pause is the point: parked, trimmed
	c0 := procCPU(cmd.Process.Pid)
	time.Sleep(d)
	return (procCPU(cmd.Process.Pid) - c0) / d.Seconds() * 100, nil
}

// openIdle opens n connections to addr, running hello (if set) on each in
// turn (the first is the from-th client of the server), and returns them
// open.
func openIdle(addr string, n int, hello func(c net.Conn, i int) error, from int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		conns = append(conns, c)
		if hello == nil {
			continue
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := hello(c, from+i); err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		c.SetDeadline(time.Time{})
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// vmRSS is a process's resident set in bytes (0 if it cannot be read).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// raiseFileLimit lifts the soft limit on open files towards want (up to
// the hard limit), for the clients this process holds, and returns the
// limit now in force.
func raiseFileLimit(want int) int {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0
	}
	if l.Cur < uint64(want) {
		l.Cur = min(uint64(want), l.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return int(l.Cur)
}
