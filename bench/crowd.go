//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The crowd section (issue 13): 1,000 idle connections from one address
// (127.0.0.2) against each server with its default settings, then a real
// client from another (127.0.0.1), five times: how long it takes, and
// what it says. Before the per-address cap and the immediate refusal,
// 1,000 idle sockets made every new strsvr client fail with "no reply
// within 30s", and delayed tms --keep's real clients by 12-26 s.
func init() {
	register(section{name: "crowd", order: 62, run: benchCrowd})
}

func benchCrowd(ctx context.Context, env *benchEnv) (string, error) {
	const idle, tries = 1000, 5
	type target struct {
		name   string
		server []string
		client func(port string) []string
		ok     *regexp.Regexp // matches the client's output when served
	}
	targets := []target{
		{"tms --keep", []string{"tms", "--keep"}, func(p string) []string { return []string{"tmc", "--quiet", "127.0.0.1", p, "abc"} }, regexp.MustCompile(`summary: 30000 bytes`)},
		{"svr", []string{"svr", "--rate", "0"}, func(p string) []string { return []string{"wps", "127.0.0.1", p, "w"} }, regexp.MustCompile(`load average`)},
		{"strsvr --keep", []string{"strsvr", "--keep"}, func(p string) []string { return []string{"strclnt", "127.0.0.1", p} }, regexp.MustCompile(`enter a letter:z+\n`)}, // v came back
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d silent connections from 127.0.0.2, then a client from 127.0.0.1, %d times, each server with its default settings:\n\n", idle, tries)
	b.WriteString("| server | client from 127.0.0.1: median, max | client |\n|---|---:|---|\n")
	for _, tg := range targets {
		cmd, port, err := startOnFreePort(func(port string) *exec.Cmd {
			return exec.CommandContext(ctx, env.tcplab, append(tg.server, port)...)
		}, false)
		if err != nil {
			return "", err
		}
		p := strconv.Itoa(port)
		addr := net.JoinHostPort("127.0.0.1", p)
		var conns []net.Conn
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		for range idle {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				continue
			}
			conns = append(conns, c)
		}
		// Let the server take them (tms and svr defer accept until the
		// kernel gives a silent connection up, a second or more).
		time.Sleep(3 * time.Second)
		var times []time.Duration
		var out string
		for range tries {
			start := time.Now()
			c := exec.CommandContext(ctx, env.tcplab, tg.client(p)...)
			c.Stdin = strings.NewReader("z\n")
			o, _ := c.CombinedOutput()
			times = append(times, time.Since(start))
			out = strings.TrimSpace(string(o))
		}
		for _, c := range conns {
			c.Close()
		}
		stopProcess(cmd, 5*time.Second)
		slices.Sort(times)
		verdict := "served"
		if !tg.ok.MatchString(out) {
			verdict = fmt.Sprintf("%q", lastLineOf(out))
		}
		fmt.Fprintf(&b, "| %s | %.0f ms, %.0f ms | %s |\n", tg.name,
			float64(times[len(times)/2].Microseconds())/1000, float64(times[len(times)-1].Microseconds())/1000, verdict)
	}
	b.WriteString("\nThe silent connections hold at most 127.0.0.2's share of the slots (tms and strsvr: a quarter of the default cap of 1,000, 250; svr: its --max-conns-per-addr, 64); the rest are refused with a busy line at once. The client's time includes starting the tcplab process.\n")
	return b.String(), nil
}

func lastLineOf(s string) string {
	return s[strings.LastIndex(s, "\n")+1:]
}
