//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The tmsprompt section: how soon tms answers the tutorial's client on
// loopback, where nothing is lost. tmc.py sends its string in one write
// and neither ends it nor half-closes; tms guesses the end from a quiet
// spell and, on a link that may lose, holds the FIN that ends the answer
// (multicopy/end.go). On loopback the hold must cost nothing: issue 18
// asks for strings up to 1 MB answered within about 60 ms. The client
// here does what tmc.py does (one write, read to end of file) and times
// from its write to the end of file; tms sends one copy, so the time is
// the end's guess, not the copying. With -baseline, another build (main's)
// is measured in the same run, after this one.
func init() {
	register(section{name: "tmsprompt", order: 15, run: benchTMSPrompt})
}

func benchTMSPrompt(ctx context.Context, env *benchEnv) (string, error) {
	sizes := []int{3, 1000, 100_000, 999_999} // 1,000,000 bytes is a marked end (the limit), not a guess
	rounds := 21
	if env.quick {
		rounds = 2
	}
	type build struct{ name, bin string }
	builds := []build{{"this build", env.tcplab}}
	if env.baseline != "" {
		builds = append(builds, build{"baseline (" + env.baseline + ")", env.baseline})
	}
	// times[b][s] are the rounds' times for build b, size s.
	times := make([][][]time.Duration, len(builds))
	for b, bd := range builds {
		times[b] = make([][]time.Duration, len(sizes))
		port, err := freePort()
		if err != nil {
			return "", err
		}
		p := strconv.Itoa(port)
		srv := exec.CommandContext(ctx, bd.bin, "tms", "--keep", "--copies", "1", p)
		if err := srv.Start(); err != nil {
			return "", err
		}
		err = waitForPortBound(p)
		for round := 0; err == nil && round < rounds; round++ {
			for s, n := range sizes {
				var d time.Duration
				if d, err = tutorialAnswer(ctx, "127.0.0.1:"+p, n); err != nil {
					err = fmt.Errorf("%s, %d bytes: %w", bd.name, n, err)
					break
				}
				times[b][s] = append(times[b][s], d)
			}
		}
		stopProcess(srv, 5*time.Second)
		if err != nil {
			return "", err
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "### tms answers the tutorial's client at once on loopback\n\n")
	fmt.Fprintf(&md, "A tmc.py-like client (one write, no end marker, no half-close; read to end of file) against `tcplab tms --keep --copies 1`, %d rounds per size; time from the client's write to the end of file of an exact answer, median and slowest.\n\n", rounds)
	fmt.Fprintf(&md, "| string |")
	for _, bd := range builds {
		fmt.Fprintf(&md, " %s: median | slowest |", bd.name)
	}
	fmt.Fprintf(&md, "\n|---|")
	for range builds {
		fmt.Fprintf(&md, "---|---|")
	}
	fmt.Fprintf(&md, "\n")
	worst := time.Duration(0)
	for s, n := range sizes {
		fmt.Fprintf(&md, "| %s |", sizeText(n))
		for b := range builds {
			ts := slices.Clone(times[b][s])
			slices.Sort(ts)
			fmt.Fprintf(&md, " %s | %s |", ms(ts[len(ts)/2]), ms(ts[len(ts)-1]))
			if b == 0 {
				worst = max(worst, ts[len(ts)-1])
			}
		}
		fmt.Fprintf(&md, "\n")
	}
	fmt.Fprintf(&md, "\nThis build's slowest answer of all: %s (target: about 60 ms for strings up to 1 MB).", ms(worst))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&md, " Load average at the end: %s.", strings.Join(strings.Fields(string(b))[:3], " "))
	}
	fmt.Fprintf(&md, "\n")
	return md.String(), nil
}

// tutorialAnswer does what tmc.py does with a string of n bytes: one write,
// then read to end of file, and checks the answer is one exact copy. It
// returns the time from the write to the end of file.
func tutorialAnswer(ctx context.Context, addr string, n int) (time.Duration, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	msg := bytes.Repeat([]byte("0123456789"), n/10+1)[:n]
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := conn.Write(msg); err != nil {
		return 0, err
	}
	got, err := io.ReadAll(conn)
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("after %d bytes: %w", len(got), err)
	}
	if !bytes.Equal(got, msg) {
		return 0, fmt.Errorf("answer of %d bytes is not the %d-byte string", len(got), n)
	}
	return took, nil
}

func sizeText(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%d MB", n/1_000_000)
	case n >= 1000:
		return fmt.Sprintf("%d kB", n/1000)
	}
	return fmt.Sprintf("%d B", n)
}
