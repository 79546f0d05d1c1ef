//go:build linux

package main

import (
	"bytes"
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
	msgLen, copies, rounds := 100_000, 10_000, 21
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
	var iperf, tcplab, tcplabWall, tcplab256, python []transferRun
	// One round runs every transfer once. Each transfer lasts about a
	// third of a second, so a burst of load from another job can fall on
	// one of them: many rounds, and an order that rotates from round to
	// round so no transfer always runs first or right after another.
	iperf = make([]transferRun, rounds)
	tcplab = make([]transferRun, rounds)
	tcplabWall = make([]transferRun, rounds)
	tcplab256 = make([]transferRun, rounds)
	python = make([]transferRun, rounds)
	steps := []func(round int) error{
		func(round int) (err error) {
			iperf[round], err = iperfRun(ctx, int64(total))
			if err != nil {
				err = fmt.Errorf("iperf3: %w", err)
			}
			return err
		},
		func(round int) (err error) {
			tcplab[round], tcplabWall[round], err = tcplabRun(ctx, env, msg, copies, total)
			if err != nil {
				err = fmt.Errorf("tcplab: %w", err)
			}
			return err
		},
		func(round int) (err error) {
			tcplab256[round], _, err = tcplabRun(ctx, env, msg, copies, total, "--read-size", "262144")
			if err != nil {
				err = fmt.Errorf("tcplab --read-size: %w", err)
			}
			return err
		},
		func(round int) (err error) {
			python[round], err = pythonRun(ctx, env, msg, total)
			if err != nil {
				err = fmt.Errorf("python: %w", err)
			}
			return err
		},
	}
	for round := range rounds {
		env.logf("multicopy round %d/%d", round+1, rounds)
		for i := range steps {
			if err := steps[(round+i)%len(steps)](round); err != nil {
				return "", err
			}
		}
	}
	// The machine is shared, so a transfer's rate moves by tens of percent
	// from one round to the next; the ratio of two transfers in the same
	// round moves much less. Report each row's median rate, and its median
	// ratio to iperf3 over the rounds, with the range.
	ratios := func(runs []transferRun) (median, lo, hi float64) {
		r := make([]float64, len(runs))
		for i := range runs {
			r[i] = runs[i].gbps / iperf[i].gbps
		}
		slices.Sort(r)
		return r[len(r)/2], r[0], r[len(r)-1]
	}
	type line struct {
		name string
		runs []transferRun
	}
	lines := []line{
		{"iperf3 -c (single stream, -n bytes)", iperf},
		{"tcplab tms --no-wait / tmc --json (quiet; tmc's own timing)", tcplab},
		{"tcplab, wall clock of the tmc process", tcplabWall},
		{"tcplab tmc --read-size 262144 (tmc's own timing)", tcplab256},
		{"tutorial tms.py / tmc.py (Python 3, wall clock of tmc.py)", python},
	}
	tlRatio, tlLo, tlHi := ratios(tcplab)
	t256Ratio, _, _ := ratios(tcplab256)
	pyRatio, _, _ := ratios(python)
	var b strings.Builder
	fmt.Fprintf(&b, "## Bulk transfer: tms / tmc (%d copies of a %d-byte message = %.1f GB, loopback)\n\n", copies, msgLen, total/1e9)
	fmt.Fprintf(&b, "%d rounds, each running the four transfers one after the other, in an order that rotates from round to round (the tcplab row and its wall-clock row are one run); GB/s and peak RSS are the median run's, the ratio is the median (and range) of the per-round ratios to that round's iperf3.\n\n", rounds)
	b.WriteString("| transfer | GB/s | ratio to iperf3 (range) | peak RSS server | peak RSS client |\n|---|---:|---:|---:|---:|\n")
	for _, l := range lines {
		m, lo, hi := ratios(l.runs)
		r := best(slices.Clone(l.runs))
		fmt.Fprintf(&b, "| %s | %.2f | %.2f× (%.2f–%.2f) | %.1f MiB | %.1f MiB |\n", l.name, r.gbps, m, lo, hi, r.serverRSS, r.clientRSS)
	}
	fmt.Fprintf(&b, "\ntcplab reaches %.2f× iperf3 (%.2f–%.2f over the rounds) with tmc.py's 1,000,000-byte reads (the default; target ≥ 0.9×), %.2f× with 256 KiB reads, and %.1f× the tutorial's Python pair. ", tlRatio, tlLo, tlHi, t256Ratio, tlRatio/pyRatio)
	b.WriteString("tms streams the copies from one block of whole copies (about 256 KiB), named four times in each writev(2) so that each system call hands the kernel about 1 MiB, so its memory is " +
		"O(message) whatever the number of copies; tmc reads into one 1,000,000-byte buffer, as tmc.py does. " +
		"iperf3 reads 128 KiB at a time; the row with tmc --read-size 262144 shows whether the read size matters on this machine " +
		"(the default stays at the tutorial's size because it is what makes the chunks come in many sizes). " +
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
	srvRSS := watchPeakRSS(srv.Process.Pid)
	if err := waitForPortBound(p); err != nil {
		srvRSS()
		return transferRun{}, err
	}
	cli := exec.CommandContext(ctx, "iperf3", "-c", "127.0.0.1", "-p", p, "-n", strconv.FormatInt(bytes, 10), "-J")
	out, cliRSS, err := outputWithRSS(cli)
	srvPeak := srvRSS()
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
	stopProcess(srv, 5*time.Second)
	return transferRun{gbps: res.End.SumReceived.BitsPerSecond / 8 / 1e9, serverRSS: srvPeak, clientRSS: cliRSS}, nil
}

func tcplabRun(ctx context.Context, env *benchEnv, msg string, copies int, total float64, tmcFlags ...string) (own, wall transferRun, err error) {
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
	srvRSS := watchPeakRSS(srv.Process.Pid)
	if err := waitForPortBound(p); err != nil {
		srvRSS()
		return own, wall, err
	}
	start := time.Now()
	cli := exec.CommandContext(ctx, env.tcplab, append(append([]string{"tmc", "--json", "--copies", strconv.Itoa(copies)}, tmcFlags...), "127.0.0.1", p, msg)...)
	out, cliRSS, err := outputWithRSS(cli)
	elapsed := time.Since(start)
	srvPeak := srvRSS()
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
	own = transferRun{gbps: sum.BytesPerSecond / 1e9, serverRSS: srvPeak, clientRSS: cliRSS}
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
	srvRSS := watchPeakRSS(srv.Process.Pid)
	if err := waitForPortBound(p); err != nil {
		srvRSS()
		return transferRun{}, err
	}
	start := time.Now()
	cli := exec.CommandContext(ctx, "python3", filepath.Join(env.root, "testdata", "tmc.py"), "127.0.0.1", p, msg)
	out, cliRSS, err := outputWithRSS(cli)
	elapsed := time.Since(start)
	srvPeak := srvRSS()
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
	return transferRun{gbps: total / elapsed.Seconds() / 1e9, serverRSS: srvPeak, clientRSS: cliRSS}, nil
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

// outputWithRSS runs cmd like cmd.Output, sampling its peak RSS meanwhile.
func outputWithRSS(cmd *exec.Cmd) (out []byte, peakMiB float64, err error) {
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	stop := watchPeakRSS(cmd.Process.Pid)
	err = cmd.Wait()
	return stdout.Bytes(), stop(), err
}
