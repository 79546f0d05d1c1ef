//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// watchPeakRSS samples the peak resident set size (VmHWM in
// /proc/PID/status) of a running process every few milliseconds; the
// returned function stops sampling and gives the last value seen, in MiB.
//
// Why not ru_maxrss from wait4: Go starts a child with vfork semantics, so
// until exec the child runs in the bench's own address space, and Linux
// keeps that image's high-water mark in the child's ru_maxrss. Every child
// would then report at least the bench's own RSS. VmHWM belongs to the
// process's current image only. The peak is monotonic, so the last sample,
// at most one interval before the process exits, is its peak but for what
// it allocates in that last interval.
func watchPeakRSS(pid int) (stop func() float64) {
	var peak float64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return // exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
				peak = max(peak, kb/1024)
			}
		}
	}
	go func() {
		defer close(finished)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		<-finished
		return peak
	}
}

// cpuSeconds is the user+system CPU time a finished process used.
func cpuSeconds(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// freePort asks the kernel for a loopback TCP port that is free now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startOnFreePort starts the server command(port) on a free loopback port
// and waits until it is up: until it accepts a probe connection when probe
// is set, else only until the port is bound (for servers that would count
// the probe as one of their clients). On failure the process is stopped;
// otherwise stopping it is the caller's.
func startOnFreePort(command func(port string) *exec.Cmd, probe bool) (cmd *exec.Cmd, port int, err error) {
	if port, err = freePort(); err != nil {
		return nil, 0, err
	}
	p := strconv.Itoa(port)
	cmd = command(p)
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", cmd.Args[0], err)
	}
	if probe {
		err = waitListening("127.0.0.1:"+p, 10*time.Second)
	} else {
		err = waitForPortBound(p)
	}
	if err != nil {
		stopProcess(cmd, time.Second)
		return nil, 0, err
	}
	return cmd, port, nil
}

// waitListening waits until something accepts TCP connections on addr.
func waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %s", addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopProcess sends SIGTERM, then SIGKILL if the process has not exited
// within grace, and returns its final state.
func stopProcess(cmd *exec.Cmd, grace time.Duration) *os.ProcessState {
	if cmd.Process == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
	return cmd.ProcessState
}
