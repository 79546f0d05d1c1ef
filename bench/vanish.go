//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

// The vanish section (issue 13): how long each server, with its default
// settings, holds the slot of a client that disappears, measured on a real
// link (internal/netlab: two namespaces, a veth pair, MTU 1500). The
// server runs as the built binary in namespace B with --max-conns 1, so
// that "the slot is free" is what a second client sees: a probe from
// inside B (over B's own loopback, which the faults do not touch) is
// served rather than told "busy". The client is in A. Faults:
//
//   - idle: the client is connected and silent (strsvr: after one letter
//     and its reply), then vanishes: every packet to or from it dropped,
//     no FIN, no RST;
//   - reply in flight: the client asked for a large answer, read the
//     start of it, then vanishes;
//   - partition: as reply in flight, but the link is cut both ways;
//   - one-sided reset: as reply in flight, but the client's side receives
//     an RST for every packet it sends and its peer hears nothing more
//     (the RST reached only one end).
//
// Every case runs on its own link, all at once; the time is from the fault
// to the first probe that is served (probes every 250 ms).
func init() {
	register(section{name: "vanish", order: 60, run: benchVanish})
}

const (
	vanishPort  = "2000"
	vanishLimit = 3 * time.Minute // give up: reported as "over"
	probeEvery  = 250 * time.Millisecond
)

var vanishFaults = []string{"idle", "reply in flight", "partition", "one-sided reset"}

type vanishCase struct {
	server string // tms, svr, strsvr
	fault  string
	took   time.Duration
	over   bool
	err    error
}

func benchVanish(ctx context.Context, env *benchEnv) (string, error) {
	if err := netlab.Check(); err != nil {
		return "", err
	}
	var cases []*vanishCase
	for _, s := range []string{"tms", "svr", "strsvr"} {
		for _, f := range vanishFaults {
			cases = append(cases, &vanishCase{server: s, fault: f})
		}
	}
	if env.quick {
		cases = cases[:1]
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() {
			c.took, c.over, c.err = runVanish(ctx, env, c.server, c.fault)
			env.logf("vanish: %s, %s: %s %v %v", c.server, c.fault, c.took.Round(10*time.Millisecond), c.over, c.err)
		})
	}
	wg.Wait()
	var b strings.Builder
	b.WriteString("Time from the fault to the slot being free again (a second client served), each server with its default settings but `--max-conns 1`, on a netlab link (veth, MTU 1500), probes every 250 ms; the issue measured 148 s (strsvr, idle), about 938 s (strsvr, reply in flight) and 89 s (tms --keep, partition and one-sided reset) before keep-alive and TCP_USER_TIMEOUT were set:\n\n")
	b.WriteString("| server | " + strings.Join(vanishFaults, " | ") + " |\n|---|" + strings.Repeat("---:|", len(vanishFaults)) + "\n")
	for i := 0; i < len(cases); i += len(vanishFaults) {
		row := []string{map[string]string{"tms": "tms --keep", "svr": "svr", "strsvr": "strsvr --keep"}[cases[i].server]}
		for _, c := range cases[i:min(i+len(vanishFaults), len(cases))] {
			switch {
			case c.err != nil:
				row = append(row, "error: "+c.err.Error())
			case c.over:
				row = append(row, "over "+vanishLimit.String())
			default:
				row = append(row, fmt.Sprintf("%.1f s", c.took.Seconds()))
			}
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString(`
What frees each slot. tms --keep: a silent client is dropped by --read-timeout (30 s from the accept); with a transfer in flight, by TCP_USER_TIMEOUT (45 s of unacknowledged data), since its --write-timeout (30 s) restarts when the last write before the fault still made progress, so it alone would take up to 60 s (that, with the send buffer filling first, was the 89 s). svr: its --read-timeout (5 s) for a silent client; an answer larger than the socket buffers is reset after --write-timeout (10 s) without progress; one that fits is in the kernel's hands at once and the slot free after at most a second's linger. strsvr: an idle client by keep-alive with TCP_USER_TIMEOUT (the first probe 45 s or more after the client was last heard: probes start after 15 s of silence, one every 5 s); a reply in flight by --write-timeout, twice 10 s for the same reason as tms. A live client's kernel answers the probes, so a person at the prompt keeps the slot however long they think (within strsvr's 30-minute --read-timeout).
`)
	return b.String(), nil
}

// runVanish runs one case on a fresh link and returns the time from the
// fault to the slot being free.
func runVanish(ctx context.Context, env *benchEnv, srvName, fault string) (time.Duration, bool, error) {
	l, err := netlab.New()
	if err != nil {
		return 0, false, err
	}
	defer l.Close()
	args := map[string][]string{
		"tms":    {"tms", "--keep", "--max-conns", "1", vanishPort},
		"svr":    {"svr", "--max-conns", "1", "--rate", "0", "--commands", "ps", vanishPort},
		"strsvr": {"strsvr", "--keep", "--max-conns", "1", "--no-discovery", vanishPort},
	}[srvName]
	if srvName == "strsvr" {
		// A v of 4 MiB, so that one letter's classic reply (the whole of
		// v) is a large answer.
		data := filepath.Join(env.tmp, fmt.Sprintf("vanish-%p.log", l))
		if err := prefill(data, 4<<20); err != nil {
			return 0, false, err
		}
		defer os.Remove(data)
		args = append(args[:len(args)-1], "--data", data, vanishPort)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := l.B.Command(sctx, env.tcplab, args...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		return 0, false, err
	}
	defer cmd.Wait()
	defer cancel()
	addr := net.JoinHostPort(l.B.Addr.String(), vanishPort)
	probe := func() (bool, error) { return probeFree(l.B, addr, srvName) }
	if err := waitFor(30*time.Second, probe); err != nil {
		return 0, false, fmt.Errorf("%s not serving: %v: %s", srvName, err, logs.String())
	}

	// The client; it may find the slot still held by the last probe for a
	// moment (the server frees it when it sees the probe's close), and is
	// then refused: try again.
	var c *net.TCPConn
	err = waitFor(10*time.Second, func() (bool, error) {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		var err error
		if c, err = l.A.Dial(dctx, addr); err != nil {
			return false, err
		}
		if err := occupy(c, srvName, fault == "idle"); err != nil {
			c.Close()
			return false, fmt.Errorf("occupy: %w", err)
		}
		return true, nil
	})
	if err != nil {
		return 0, false, err
	}
	defer c.Close()
	// The slot is taken: a probe is told busy.
	if err := waitFor(30*time.Second, func() (bool, error) { free, err := probe(); return !free, err }); err != nil {
		return 0, false, fmt.Errorf("the client never held the slot: %v", err)
	}
	switch fault {
	case "idle", "reply in flight":
		err = l.A.Vanish()
	case "partition":
		err = l.Partition(true)
	case "one-sided reset":
		err = l.A.ResetOneSide()
	}
	if err != nil {
		return 0, false, err
	}
	start := time.Now()
	for time.Since(start) < vanishLimit {
		if ctx.Err() != nil {
			return 0, false, ctx.Err()
		}
		free, err := probe()
		if err != nil {
			return 0, false, err
		}
		if free {
			return time.Since(start), false, nil
		}
		time.Sleep(probeEvery)
	}
	return vanishLimit, true, nil
}

// occupy makes c take the slot: idle (silent, or for strsvr one letter
// and its reply first), or with a large answer in flight of which it reads
// only the start.
func occupy(c *net.TCPConn, srvName string, idle bool) error {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	switch {
	case idle && srvName == "strsvr":
		if _, err := c.Write([]byte("a")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 4<<20+1)) // v and the letter
		return err
	case idle:
		return nil // silent: held once the deferred accept gives it up
	}
	// A small receive buffer, so that most of the answer is still at
	// the server when the fault comes.
	c.SetReadBuffer(16 << 10)
	req := map[string]string{
		"tms":    strings.Repeat("x", 99) + "\n", // 10,000 copies: 1 MB
		"svr":    "ps",
		"strsvr": "a", // v, 4 MiB
	}[srvName]
	if _, err := c.Write([]byte(req)); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1000))
	return err
}

// probeFree asks the server, from inside its own namespace, whether it
// would serve a new client now (true) or refuses it as busy (false).
func probeFree(h *netlab.Host, addr, srvName string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if srvName == "strsvr" {
		// A framed hello: 'h' is served, 'e' is busy.
		if _, err := c.Write(sharedstring.Hello(0)); err != nil {
			return false, err
		}
		kind := make([]byte, 1)
		if _, err := io.ReadFull(c, kind); err != nil {
			return false, err
		}
		return kind[0] == sharedstring.KindHello, nil
	}
	req := map[string]string{"tms": "p\n", "svr": "ps"}[srvName]
	if _, err := c.Write([]byte(req)); err != nil {
		return false, err
	}
	head := make([]byte, len(server.BusyPrefix))
	if _, err := io.ReadFull(c, head); err != nil {
		return false, err
	}
	return string(head) != server.BusyPrefix, nil
}

func waitFor(limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		last = err
		time.Sleep(probeEvery)
	}
	if last == nil {
		last = fmt.Errorf("not within %s", limit)
	}
	return last
}

// prefill makes a strsvr data file holding a v of n bytes.
func prefill(path string, n int) error {
	f, err := store.OpenFile(path, store.FileOptions{Fsync: store.FsyncInterval})
	if err != nil {
		return err
	}
	if _, err := f.Append(context.Background(), bytes.Repeat([]byte("v"), n)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
