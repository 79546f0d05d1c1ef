//go:build linux

package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redisproc"
	"github.com/tcplab/tcplab/sharedstring"
)

// The Redis section (issue 5): letters per second through strsvr on the
// Redis store with 1, 2 and 3 strsvr processes sharing one v, beside one
// strsvr on the in-memory store and Redis itself doing the same work per
// letter (MULTI, APPEND, GET, EXEC), at 100 and 1,000 clients, in the same
// run against the same redis-server.
func init() {
	register(section{name: "redis", order: 40, run: benchRedis})
}

type redisCell struct {
	target     string
	redisStore bool
	servers    int // strsvr processes (0: none)
	clients    int
	letters    int // acknowledged letters
	errors     int
	elapsed    time.Duration
	p50, p99   time.Duration
	cpuSvr     float64 // CPU seconds of the strsvr processes in the timed phase
	cpuRedis   float64 // of redis-server
	cpuLoad    float64 // of this process (the clients)
}

func (c redisCell) rate() float64 { return float64(c.letters) / c.elapsed.Seconds() }

func benchRedis(ctx context.Context, env *benchEnv) (string, error) {
	perClient := map[int]int{100: 400, 1000: 40}
	repeats := 3
	if env.quick {
		perClient = map[int]int{100: 10, 1000: 3}
		repeats = 1
	}
	redisPort, err := freePort()
	if err != nil {
		return "", err
	}
	rs, err := redisproc.Start(filepath.Join(env.tmp, "redis"), redisPort)
	if err != nil {
		return "", err
	}
	defer rs.Stop()

	var cells []redisCell
	for _, clients := range []int{100, 1000} {
		letters := perClient[clients]
		targets := []struct {
			name    string
			servers int
			store   bool
		}{
			{"strsvr, in-memory store", 1, false},
			{"strsvr, Redis store", 1, true},
			{"strsvr, Redis store", 2, true},
			{"strsvr, Redis store", 3, true},
			{"Redis: MULTI APPEND GET EXEC", 0, false},
		}
		for _, tg := range targets {
			// The machine is shared: run each cell a few times, each from an
			// empty v with fresh processes, and keep the median by rate.
			var runs []redisCell
			for run := range repeats {
				key := fmt.Sprintf("bench:%d:%d:%t:%d", clients, tg.servers, tg.store, run)
				env.logf("redis: %s x%d, %d clients x %d letters, run %d", tg.name, tg.servers, clients, letters, run+1)
				var cell redisCell
				var err error
				if tg.servers == 0 {
					cell, err = benchRawRedis(ctx, rs, key, clients, letters)
				} else {
					url := ""
					if tg.store {
						url = rs.URL(key)
					}
					cell, err = benchStrsvrGroup(ctx, env, rs, url, tg.servers, clients, letters)
				}
				if err != nil {
					return "", fmt.Errorf("%s x%d, %d clients: %w", tg.name, tg.servers, clients, err)
				}
				cell.target, cell.redisStore = tg.name, tg.store
				runs = append(runs, cell)
			}
			slices.SortFunc(runs, func(a, b redisCell) int { return cmp.Compare(a.rate(), b.rate()) })
			cells = append(cells, runs[len(runs)/2])
		}
	}
	return redisMarkdown(cells, perClient, repeats), nil
}

// benchStrsvrGroup starts servers strsvr processes (on the Redis store at
// url, or in memory when url is ""), spreads clients over them, and has
// each client send letters one at a time, waiting for each reply.
func benchStrsvrGroup(ctx context.Context, env *benchEnv, rs *redisproc.Server, url string, servers, clients, letters int) (redisCell, error) {
	var cmds []*exec.Cmd
	var ports []string
	defer func() {
		for _, c := range cmds {
			stopProcess(c, 5*time.Second)
		}
	}()
	for range servers {
		port, err := freePort()
		if err != nil {
			return redisCell{}, err
		}
		argv := []string{"strsvr", "--keep", "--max-conns", "5000"}
		if url != "" {
			argv = append(argv, "--store", url)
		}
		cmd := exec.CommandContext(ctx, env.tcplab, append(argv, strconv.Itoa(port))...)
		if err := cmd.Start(); err != nil {
			return redisCell{}, err
		}
		cmds = append(cmds, cmd)
		// --keep: the probe connection of waitListening is a client that
		// leaves, which does not stop the server.
		if err := waitListening("127.0.0.1:"+strconv.Itoa(port), 10*time.Second); err != nil {
			return redisCell{}, err
		}
		ports = append(ports, strconv.Itoa(port))
	}
	conns := make([]*sharedstring.Client, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := sharedstring.Dial(ctx, "127.0.0.1", ports[i%servers], sharedstring.Options{Mode: sharedstring.Framed, DialTimeout: 5 * time.Second})
		if err != nil {
			return redisCell{}, err
		}
		conns[i] = c
	}
	pids := []int{}
	for _, c := range cmds {
		pids = append(pids, c.Process.Pid)
	}
	cell := runLetters(clients, letters, pids, rs.Pid(), func(i int, letter byte) error {
		v, err := conns[i].Send([]byte{letter})
		if err == nil && (len(v) == 0 || v[len(v)-1] != letter) {
			err = fmt.Errorf("reply does not end with the letter sent")
		}
		return err
	})
	cell.servers = servers
	return cell, nil
}

// benchRawRedis is Redis alone doing a strsvr's work per letter: one
// connection per client, MULTI APPEND GET EXEC in one round trip.
func benchRawRedis(ctx context.Context, rs *redisproc.Server, key string, clients, letters int) (redisCell, error) {
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), PoolSize: clients, MaxRetries: -1, DisableIdentity: true})
	defer rdb.Close()
	// Open every connection before the clock starts.
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			if err := rdb.Ping(ctx).Err(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return redisCell{}, err
	}
	cell := runLetters(clients, letters, nil, rs.Pid(), func(i int, letter byte) error {
		var get *redis.StringCmd
		_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Append(ctx, key, string([]byte{letter}))
			get = p.Get(ctx, key)
			return nil
		})
		if err == nil {
			if v := get.Val(); len(v) == 0 || v[len(v)-1] != letter {
				err = fmt.Errorf("reply does not end with the letter sent")
			}
		}
		return err
	})
	return cell, nil
}

// runLetters runs clients goroutines that each call send letters times,
// all starting together, and measures rate, latency and CPU.
func runLetters(clients, letters int, svrPids []int, redisPid int, send func(i int, letter byte) error) redisCell {
	lat := make([][]time.Duration, clients)
	errCount := make([]int, clients)
	cpuSvr0 := 0.0
	for _, p := range svrPids {
		cpuSvr0 += procCPU(p)
	}
	cpuRedis0, cpuLoad0 := procCPU(redisPid), selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			lat[i] = make([]time.Duration, 0, letters)
			for k := range letters {
				t0 := time.Now()
				if err := send(i, byte('a'+(i+k)%26)); err != nil {
					errCount[i]++
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	cell := redisCell{clients: clients, elapsed: time.Since(start)}
	for _, p := range svrPids {
		cell.cpuSvr += procCPU(p)
	}
	cell.cpuSvr -= cpuSvr0
	cell.cpuRedis = procCPU(redisPid) - cpuRedis0
	cell.cpuLoad = selfCPU() - cpuLoad0
	all := slices.Concat(lat...)
	slices.Sort(all)
	cell.letters = len(all)
	for _, e := range errCount {
		cell.errors += e
	}
	if len(all) > 0 {
		cell.p50, cell.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return cell
}

// procCPU is the CPU seconds (user+system) a running process has used, from
// /proc/PID/stat; 0 if it cannot be read.
func procCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses and may hold
	// spaces): utime and stime are the 12th and 13th.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// selfCPU is this process's CPU seconds so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func redisMarkdown(cells []redisCell, perClient map[int]int, repeats int) string {
	var b strings.Builder
	b.WriteString("## Shared string on Redis (strsvr --store)\n\n")
	fmt.Fprintf(&b, "Each client sends one letter and waits for its reply, %d letters per client at 100 clients and %d at 1,000; "+
		"v starts empty in every row. strsvr clients are tcplab clients (framed mode: each reply carries only the bytes of v the client lacks); "+
		"the Redis row is one go-redis connection per client sending MULTI, APPEND, GET, EXEC in one round trip, so every reply carries the whole v. "+
		"redis-server is one process with `--appendonly yes` (fsync every second), shared by every row. "+
		"CPU is seconds used during the timed run by the strsvr processes, redis-server, and the benchmark's own clients. "+
		"Each row is the median (by letters/s) of %d runs.\n\n",
		perClient[100], perClient[1000], repeats)
	b.WriteString("| clients | target | strsvr processes | letters/s | vs Redis | p50 | p99 | errors | CPU s strsvr | CPU s redis | CPU s clients | redis CPU µs/letter | cores busy |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	raw := map[int]float64{}
	for _, c := range cells {
		if c.servers == 0 {
			raw[c.clients] = c.rate()
		}
	}
	for _, c := range cells {
		procs := "-"
		if c.servers > 0 {
			procs = strconv.Itoa(c.servers)
		}
		ratio := "-"
		if r := raw[c.clients]; r > 0 && c.servers > 0 {
			ratio = fmt.Sprintf("%.2fx", c.rate()/r)
		}
		perLetter := "-"
		if c.letters > 0 && (c.servers == 0 || c.redisStore) {
			perLetter = fmt.Sprintf("%.1f", c.cpuRedis/float64(c.letters)*1e6)
		}
		busy := (c.cpuSvr + c.cpuRedis + c.cpuLoad) / (c.elapsed.Seconds() * float64(runtime.NumCPU()))
		fmt.Fprintf(&b, "| %d | %s | %s | %.0f | %s | %s | %s | %d | %.2f | %.2f | %.2f | %s | %.0f%% |\n",
			c.clients, c.target, procs, c.rate(), ratio, roundDur(c.p50), roundDur(c.p99), c.errors, c.cpuSvr, c.cpuRedis, c.cpuLoad, perLetter, 100*busy)
	}
	fmt.Fprintf(&b, `
What bounds the numbers. Every client waits for each reply, so the rate is
about clients ÷ latency (Little's law), and a letter through the Redis store
pays one more hop (strsvr → Redis → strsvr) than through the in-memory
store. At 1,000 clients the clients, the strsvr processes and redis-server
saturate this machine's %d cores ("cores busy" counts only them; the machine
is shared), so extra strsvr processes cannot add throughput here: they add
processes to schedule and split the batches. What does carry over to
strsvr processes on separate machines is "redis CPU µs/letter": the Redis
store sends each strsvr's waiting letters as one Lua script (one APPEND for
the batch) and fetches only the bytes of v its copy lacks, so Redis spends a
few µs per letter, while MULTI/APPEND/GET/EXEC per letter costs Redis several
times more, growing with v since every GET sends the whole of v. Redis runs
scripts on one thread, so a group's ceiling is about one second of Redis CPU
divided by that per-letter cost.
`, runtime.NumCPU())
	return b.String()
}

func roundDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Microsecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.String()
}
