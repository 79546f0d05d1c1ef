package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The multicopy section: one gigabyte through one TCP connection on
// loopback (a 100,000-byte message sent back 10,000 times), by tcplab's
// tms/tmc, by the tutorial's own Python pair, and by iperf3, the reference
// for single-stream bulk throughput.
func init() {
	register(section{name: "multicopy", order: 10, run: benchMulticopy})
}

type transferRun struct {
	gbps      float64 // decimal GB per second
	serverRSS float64 // MiB
	clientRSS float64 // MiB
}

func benchMulticopy(ctx context.Context, env *benchEnv) (string, error) {
	msgLen, copies, rounds := 100_000, 10_000, 3
	if env.quick {
		msgLen, rounds = 10_000, 1
	}
	total := float64(msgLen) * float64(copies)
	msg := strings.Repeat("0123456789", msgLen/10)

	best := func(runs []transferRun) transferRun {
		slices.SortFunc(runs, func(a, b transferRun) int {
			switch {
			case a.gbps < b.gbps:
				return -1
			case a.gbps > b.gbps:
				return 1
			}
			return 0
		})
		return runs[len(runs)/2] // the median run
	}
	var iperf, tcplab, tcplabWall, python []transferRun
	for round := range rounds {
		env.logf("multicopy round %d/%d", round+1, rounds)
		r, err := iperfRun(ctx, int64(total))
		if err != nil {
			return "", fmt.Errorf("iperf3: %w", err)
		}
		iperf = append(iperf, r)

		r, wall, err := tcplabRun(ctx, env, msg, copies, total)
		if err != nil {
			return "", fmt.Errorf("tcplab: %w", err)
		}
		tcplab = append(tcplab, r)
		tcplabWall = append(tcplabWall, wall)

		r, err = pythonRun(ctx, env, msg, total)
		if err != nil {
			return "", fmt.Errorf("python: %w", err)
		}
		python = append(python, r)
	}
	ip, tl, tw, py := best(iperf), best(tcplab), best(tcplabWall), best(python)
	var b strings.Builder
	fmt.Fprintf(&b, "## Bulk transfer: tms / tmc (%d copies of a %d-byte message = %.1f GB, loopback)\n\n", copies, msgLen, total/1e9)
	fmt.Fprintf(&b, "Median of %d rounds; all four measured in the same rounds.\n\n", rounds)
	b.WriteString("| transfer | GB/s | ratio to iperf3 | peak RSS server | peak RSS client |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, r transferRun) {
		fmt.Fprintf(&b, "| %s | %.2f | %.2f× | %.1f MiB | %.1f MiB |\n", name, r.gbps, r.gbps/ip.gbps, r.serverRSS, r.clientRSS)
	}
	row("iperf3 -c (single stream, -n bytes)", ip)
	row("tcplab tms --no-wait / tmc --quiet (tmc's own timing)", tl)
	row("tcplab, wall clock of the tmc process", tw)
	row("tutorial tms.py / tmc.py (Python 3, wall clock of tmc.py)", py)
	fmt.Fprintf(&b, "\ntcplab reaches %.2f× iperf3 (target ≥ 0.9×) and %.1f× the tutorial's Python pair. ", tl.gbps/ip.gbps, tl.gbps/py.gbps)
	b.WriteString("tms streams the copies from one block of whole copies (about 256 KiB) written again and again, so its memory is " +
		"O(message) whatever the number of copies; tmc reads into one 1,000,000-byte buffer, as tmc.py does. " +
		"tms.py builds the whole gigabyte in memory before sending it, which its peak RSS shows. " +
		"What bounds all of them is the kernel's loopback copy: one user-to-kernel copy on send, one kernel-to-user copy on receive, on two cores.\n")
	return b.String(), nil
}

func iperfRun(ctx context.Context, bytes int64) (transferRun, error) {
	port, err := freePort()
	if err != nil {
		return transferRun{}, err
	}
	p := strconv.Itoa(port)
	srv := exec.CommandContext(ctx, "iperf3", "-s", "-1", "-p", p)
	if err := srv.Start(); err != nil {
		return transferRun{}, fmt.Errorf("start iperf3 (apt-get install iperf3): %w", err)
	}
	defer stopProcess(srv, 2*time.Second)
	if err := waitForPortBound(p); err != nil {
		return transferRun{}, err
	}
	cli := exec.CommandContext(ctx, "iperf3", "-c", "127.0.0.1", "-p", p, "-n", strconv.FormatInt(bytes, 10), "-J")
	out, err := cli.Output()
	if err != nil {
		return transferRun{}, fmt.Errorf("iperf3 -c: %w: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return transferRun{}, err
	}
	srvState := stopProcess(srv, 5*time.Second)
	return transferRun{gbps: res.End.SumReceived.BitsPerSecond / 8 / 1e9, serverRSS: maxRSSMB(srvState), clientRSS: maxRSSMB(cli.ProcessState)}, nil
}

func tcplabRun(ctx context.Context, env *benchEnv, msg string, copies int, total float64) (own, wall transferRun, err error) {
	port, err := freePort()
	if err != nil {
		return own, wall, err
	}
	p := strconv.Itoa(port)
	srv := exec.CommandContext(ctx, env.tcplab, "tms", "--no-wait", "--copies", strconv.Itoa(copies), p)
	srv.Stderr = nil
	if err := srv.Start(); err != nil {
		return own, wall, err
	}
	defer stopProcess(srv, 2*time.Second)
	if err := waitForPortBound(p); err != nil {
		return own, wall, err
	}
	start := time.Now()
	cli := exec.CommandContext(ctx, env.tcplab, "tmc", "--json", "127.0.0.1", p, msg)
	out, err := cli.Output()
	elapsed := time.Since(start)
	if err != nil {
		return own, wall, fmt.Errorf("tmc: %w", err)
	}
	var sum struct {
		Bytes          int64   `json:"bytes"`
		BytesPerSecond float64 `json:"bytes_per_second"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		return own, wall, fmt.Errorf("tmc output %q: %w", out, err)
	}
	if float64(sum.Bytes) != total {
		return own, wall, fmt.Errorf("tmc received %d bytes, want %.0f", sum.Bytes, total)
	}
	if err := srv.Wait(); err != nil {
		return own, wall, fmt.Errorf("tms: %w", err)
	}
	own = transferRun{gbps: sum.BytesPerSecond / 1e9, serverRSS: maxRSSMB(srv.ProcessState), clientRSS: maxRSSMB(cli.ProcessState)}
	wall = own
	wall.gbps = total / elapsed.Seconds() / 1e9
	return own, wall, nil
}

func pythonRun(ctx context.Context, env *benchEnv, msg string, total float64) (transferRun, error) {
	port, err := freePort()
	if err != nil {
		return transferRun{}, err
	}
	p := strconv.Itoa(port)
	srv := exec.CommandContext(ctx, "python3", filepath.Join(env.root, "testdata", "tms.py"), p)
	srv.Stdin = strings.NewReader("\n") // the go-ahead, typed in advance
	if err := srv.Start(); err != nil {
		return transferRun{}, err
	}
	defer stopProcess(srv, 2*time.Second)
	if err := waitForPortBound(p); err != nil {
		return transferRun{}, err
	}
	start := time.Now()
	cli := exec.CommandContext(ctx, "python3", filepath.Join(env.root, "testdata", "tmc.py"), "127.0.0.1", p, msg)
	out, err := cli.Output()
	elapsed := time.Since(start)
	if err != nil {
		return transferRun{}, fmt.Errorf("tmc.py: %w", err)
	}
	var got int64
	for _, line := range strings.Split(string(out), "\n") {
		var n int64
		if _, err := fmt.Sscanf(line, "received %d bytes", &n); err == nil {
			got += n
		}
	}
	if float64(got) != total {
		return transferRun{}, fmt.Errorf("tmc.py received %d bytes, want %.0f", got, total)
	}
	srv.Wait()
	return transferRun{gbps: total / elapsed.Seconds() / 1e9, serverRSS: maxRSSMB(srv.ProcessState), clientRSS: maxRSSMB(cli.ProcessState)}, nil
}

// waitForPortBound waits until a TCP port is bound by someone, without
// connecting (a connection would be a one-client server's only client): it
// tries to bind the port itself and stops when that fails.
func waitForPortBound(port string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			return nil
		}
		ln.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nothing listening on port %s", port)
}
