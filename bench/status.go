package main

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

	// Each target's argv ends with its port.
	targets := []struct {
		name string
		argv []string
	}{
		{"tcplab svr", []string{env.tcplab, "svr", "--rate", "0", "--max-conns", "2000"}},
		{"tcplab svr --fresh 0", []string{env.tcplab, "svr", "--rate", "0", "--max-conns", "2000", "--fresh", "0"}},
		{"svr.py (Python 3)", []string{"python3", filepath.Join(env.root, "testdata", "svr.py")}},
	}
	var results []statusResult
	var cpuLines []string
	for _, tg := range targets {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		argv := append(slices.Clone(tg.argv), strconv.Itoa(port))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		// Standard output and error go to /dev/null (nil): both servers print
		// a line per client, and a pipe would make the benchmark pay for it.
		if err := cmd.Start(); err != nil {
			return "", fmt.Errorf("start %s: %w", tg.name, err)
		}
		stopRSS := watchPeakRSS(cmd.Process.Pid)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if err := waitListening(addr, 10*time.Second); err != nil {
			stopRSS()
			stopProcess(cmd, time.Second)
			return "", err
		}
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
	return statusMarkdown(results, dur) + "\nServer cost (CPU from its rusage, peak RSS from VmHWM): " + strings.Join(cpuLines, "; ") + ".\n", nil
}

// loadStatus runs clients loops of connect, send command, read to end of
// file, for dur; a request that takes over timeout, fails or gets an
// answer without the expected text is an error.
func loadStatus(ctx context.Context, addr, command string, clients int, dur, timeout time.Duration) statusResult {
	want := map[string]string{"w": "load average", "ps": "PID"}[command]
	ap := netip.MustParseAddrPort(addr)
	sa := &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	var mu sync.Mutex
	var lat []time.Duration
	errs, completedLate := 0, 0
	errKinds := map[string]int{}
	start := time.Now()
	stop := start.Add(dur)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			var mine []time.Duration
			bad, late := 0, 0
			kinds := map[string]int{}
			for time.Now().Before(stop) && ctx.Err() == nil {
				t0 := time.Now()
				fail := oneStatusRequest(sa, command, want, timeout, buf)
				switch {
				case fail != "":
					bad++
					kinds[fail]++
					if strings.HasPrefix(fail, "connect: ") {
						// As a real client would: do not spin on a refused
						// or overflowing listener.
						time.Sleep(10 * time.Millisecond)
					}
				case time.Now().After(stop):
					late++ // counted in the latencies, not in the rate
					mine = append(mine, time.Since(t0))
				default:
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			completedLate += late
			for k, v := range kinds {
				errKinds[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	// The rate counts the requests completed within dur: at the end, a
	// server that queues clients leaves some waiting up to the timeout.
	r := statusResult{command: command, clients: clients, requests: len(lat), errors: errs, rate: float64(len(lat)-completedLate) / dur.Seconds(), errKinds: errKinds}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// oneStatusRequest is one wps.py exchange made with blocking system calls
// on the goroutine's thread: no netpoller, no keep-alive setup, so the load
// generator spends as little of the shared CPU as it can and the numbers
// measure the server.
func oneStatusRequest(addr *syscall.SockaddrInet4, command, want string, timeout time.Duration, buf []byte) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "socket: " + err.Error()
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	// SO_SNDTIMEO bounds connect and send, SO_RCVTIMEO each receive.
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	if err := connectRetrying(fd, addr, timeout); err != nil {
		if err == syscall.EAGAIN || err == syscall.EINPROGRESS {
			return "connect: timed out"
		}
		return "connect: " + err.Error()
	}
	if _, err := syscall.Write(fd, []byte(command)); err != nil {
		return "send: " + err.Error()
	}
	deadline := time.Now().Add(timeout)
	var got []byte
	for time.Now().Before(deadline) {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return "recv: timed out"
		}
		if err != nil {
			return "recv: " + err.Error()
		}
		if n == 0 {
			if !strings.Contains(string(got), want) {
				return fmt.Sprintf("wrong answer %q", firstBytes(got, 40))
			}
			return ""
		}
		if len(got) < 4096 {
			got = append(got, buf[:min(n, 4096)]...)
		}
	}
	return "timed out"
}

// connectRetrying is a blocking connect that survives the Go runtime's
// preemption signals: an interrupted connect goes on in the kernel, and
// calling connect again reports EALREADY until it is done, then EISCONN.
func connectRetrying(fd int, addr *syscall.SockaddrInet4, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Connect(fd, addr)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EALREADY:
			if time.Now().After(deadline) {
				return syscall.EAGAIN
			}
			time.Sleep(time.Millisecond) // the SYN is out; poll gently
			continue
		case syscall.EISCONN:
			return nil
		}
		return err
	}
}

func firstBytes(b []byte, n int) string { return string(b[:min(len(b), n)]) }

func statusMarkdown(results []statusResult, dur time.Duration) string {
	var b strings.Builder
	b.WriteString("## svr / wps: remote w and ps (tutorial section 5.2)\n\n")
	fmt.Fprintf(&b, "Each cell: N clients in a loop of connect, send the command, read to end of file, for %s (5 s timeout per request). req/s counts the answers completed within the %s; requests and the latencies include those still in flight at the end; errors are timeouts, failed connects and wrong answers.\n\n", dur, dur)
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
(or overflow) its one-deep backlog and time out. tcplab svr runs the command
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
