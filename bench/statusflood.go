//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The flood figure of the status section: how long a real client's `w`
// takes while another address holds thousands of silent connections (it
// connects and never sends). Both addresses are loopback: the flood comes
// from 127.0.0.2, the real client from 127.0.0.1, so a per-address cap can
// tell them apart as it would two hosts.

const (
	floodConns   = 5000
	floodFrom    = "127.0.0.2"
	floodSamples = 12
	floodWindow  = 12 * time.Second
	// floodWTimeout bounds one timed `w`: the figure is a time, and a
	// timeout shows as "over" it.
	floodWTimeout = 30 * time.Second
)

// floodResult is one server's row.
type floodResult struct {
	server   string
	open     int // flood connections still open when the real client asked
	refused  int // flood connections the server closed or refused by then
	lat      []time.Duration
	failures []string
}

// floodStatus starts the server of argv (its port appended), opens
// floodConns silent connections to it from floodFrom, and then times
// floodSamples requests for w from 127.0.0.1, one after the other, while
// the flood holds.
func floodStatus(ctx context.Context, name string, argv []string, logf func(string, ...any)) (floodResult, error) {
	cmd, port, err := startOnFreePort(statusCommand(ctx, argv), true)
	if err != nil {
		return floodResult{}, fmt.Errorf("%s: %w", name, err)
	}
	defer stopProcess(cmd, 5*time.Second)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	r := floodResult{server: name}

	// The flood: every connection dialled at once, each held open (never
	// written to) until the timed requests are done.
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	var dialed, failed atomic.Int64
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(floodFrom)}, Timeout: 10 * time.Second}
	for range floodConns {
		go func() {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				failed.Add(1)
				return
			}
			dialed.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	// Ask once the flood's connects have been answered (or for at most
	// 3 s, as a SYN the kernel dropped is retried only after a second).
	for deadline := time.Now().Add(3 * time.Second); dialed.Load()+failed.Load() < floodConns && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // polling a counter: the pause is the point
	}
	logf("status flood: %s: %d of %d silent connections open from %s", name, dialed.Load(), floodConns, floodFrom)
	// The kernel hands a silent connection to svr only after about a
	// second (TCP_DEFER_ACCEPT), and svr drops it after its read timeout,
	// so the requests are spread over the flood's first floodWindow.
	floodStart := time.Now()
	for i := range floodSamples {
		if wait := time.Until(floodStart.Add(floodWindow * time.Duration(i) / floodSamples)); wait > 0 {
			time.Sleep(wait) // the schedule of the timed requests
		}
		start := time.Now()
		err := askW(ctx, addr)
		r.lat = append(r.lat, time.Since(start))
		if err != nil {
			r.failures = append(r.failures, failureKind(err))
		}
	}
	// How many of the flood's connections the server had dropped by now:
	// a read on a refused one ends at once.
	mu.Lock()
	held := slices.Clone(conns)
	mu.Unlock()
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			r.refused++
		} else {
			r.open++
		}
	}
	r.refused += int(failed.Load())
	return r, nil
}

// failureKind names what went wrong with a timed request, without the
// addresses and ports that make every message different.
func failureKind(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case isTimeout(err):
		return "timed out"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// askW is one real client from 127.0.0.1: connect, send "w", read to end
// of file, and check the answer is w's.
func askW(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, floodWTimeout)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(floodWTimeout))
	if _, err := c.Write([]byte("w")); err != nil {
		return err
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !strings.Contains(string(out), "load average") {
		return fmt.Errorf("answer %q", firstBytes(out, 60))
	}
	return nil
}

// floodMarkdown is the flood table.
func floodMarkdown(rows []floodResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "A flood of silent connections: %d connections from %s that never send, dialled at once and held, and meanwhile %d requests for `w` from 127.0.0.1, one after the other, started at most every %s from the first connect on (each connect, send, read to end of file; over %s is a failure). Both addresses are loopback, the same machine.\n\n", floodConns, floodFrom, floodSamples, floodWindow/floodSamples, floodWTimeout)
	b.WriteString("| server | flood connections still open / dropped at the end | `w` from another address: median | slowest | failures |\n|---|--:|--:|--:|--:|\n")
	for _, r := range rows {
		lat := slices.Clone(r.lat)
		slices.Sort(lat)
		fails := strconv.Itoa(len(r.failures))
		if len(r.failures) > 0 {
			kinds := map[string]int{}
			for _, f := range r.failures {
				kinds[f]++
			}
			var parts []string
			for k, n := range kinds {
				parts = append(parts, fmt.Sprintf("%d× %s", n, k))
			}
			slices.Sort(parts)
			fails += " (" + strings.Join(parts, ", ") + ")"
		}
		fmt.Fprintf(&b, "| %s | %d / %d | %s | %s | %s |\n", r.server, r.open, r.refused, ms(lat[len(lat)/2]), ms(lat[len(lat)-1]), fails)
	}
	b.WriteString(`
A silent connection is handed to svr about a second after its connect
(TCP_DEFER_ACCEPT) and then held until svr's 5 s read timeout. With the
per-address cap (64 by default) svr holds at most 64 of them and refuses
the rest at once, so the ` + "`w`" + ` from the other address always finds a slot.
Without it (the last row) the flood takes all 1,000 slots and the server
refuses everyone over them, the real client included: the failures are
those refusals (a reset once 64 refusals are already in progress). Before
svr refused over-cap connections at all, they waited in the listen
backlog: the binary before this change, measured with this harness on the
same machine the same day, answered the slowest ` + "`w`" + ` after 3.99 s with the
defaults and after 18.98 s with --rate 0, no failures.
`)
	return b.String()
}
