//go:build linux

package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/storefaults"
)

// The storefaults section: the long budget of the fault checker of strsvr
// on Redis (internal/storefaults; the test suite runs a short one). Each
// run is a fresh Redis with a replica and three strsvr processes, each
// with two typists, a classic client, two watchers and a strclnt --watch,
// through a seeded series of faults: stalls (CLIENT PAUSE, DEBUG SLEEP,
// up to 12 s, past the 5 s a store gives one script and the 10 s a
// watcher waits out a store it cannot read), kill -9 with and
// without persistence, a partition of one strsvr, a failover to a replica
// that missed the last letters, hand edits of v, FLUSHALL and DEL of the
// group's counts; a fourth strsvr without --keep (the stopper) has a
// visitor that comes and goes. After every step it checks that no client
// was shown a v that is not a prefix of the group's v, that every watcher
// caught up or was told, and that the stopper did not take the group for
// empty while a client was connected. Its results go to
// docs/reliability.md.
func init() {
	register(section{name: "storefaults", order: 90, doc: "docs/reliability.md", run: benchStoreFaults})
}

func benchStoreFaults(ctx context.Context, env *benchEnv) (string, error) {
	runs, steps := 4, 30
	if env.quick {
		runs, steps = 1, 8
	}
	var all []*storefaults.Result
	for i := range runs {
		seed := uint64(time.Now().UnixNano())
		env.logf("storefaults: run %d of %d, seed %d", i+1, runs, seed)
		res, err := storefaults.Run(ctx, storefaults.Config{
			Binary:  env.tcplab,
			Dir:     filepath.Join(env.tmp, fmt.Sprint("storefaults", i)),
			Port:    freePort,
			Seed:    seed,
			Steps:   steps,
			Longest: 12 * time.Second,
			Logf:    func(f string, a ...any) { env.logf("storefaults: "+f, a...) },
		})
		if err != nil {
			return "", err
		}
		for _, p := range res.Problems {
			env.logf("storefaults: %s", p)
		}
		all = append(all, res)
	}
	return storeFaultsTable(all), nil
}

func storeFaultsTable(all []*storefaults.Result) string {
	var b strings.Builder
	var tot storefaults.Result
	tot.Faults = map[string]int{}
	var seeds []string
	var took time.Duration
	for _, r := range all {
		tot.Steps += r.Steps
		tot.Letters += r.Letters
		tot.Shown += r.Shown
		tot.Checks += r.Checks
		tot.Wrong += r.Wrong
		tot.Window += r.Window
		tot.Stale += r.Stale
		tot.Told += r.Told
		tot.Finals += r.Finals
		tot.Stops += r.Stops
		tot.Early += r.Early
		tot.CatchUp = max(tot.CatchUp, r.CatchUp)
		tot.EditSeen = max(tot.EditSeen, r.EditSeen)
		tot.Problems = append(tot.Problems, r.Problems...)
		for k, v := range r.Faults {
			tot.Faults[k] += v
		}
		seeds = append(seeds, fmt.Sprint(r.Seed))
		took += r.Took
	}
	fmt.Fprintf(&b, "`go run ./bench -only storefaults`: %d runs (seeds %s), %d steps in all, %s.\n\n", len(all), strings.Join(seeds, ", "), tot.Steps, took.Round(time.Second))
	b.WriteString("| measured | count |\n|---|---:|\n")
	row := func(what string, n any) { fmt.Fprintf(&b, "| %s | %v |\n", what, n) }
	row("letters answered (typists and classic clients)", tot.Letters)
	row("v's shown to clients (replies, watcher updates, strclnt lines)", tot.Shown)
	row("client records checked against the group's v", tot.Checks)
	row("**wrong v shown** (not a prefix of the group's v, outside a hand edit's window)", tot.Wrong)
	row("watchers neither current nor told 30 s after Redis answered (stale)", tot.Stale)
	row("v's shown with the old bytes after a same-length hand edit, before the servers saw it", tot.Window)
	row("connections the server ended with an `e` frame (told)", tot.Told)
	row("longest wait of a watcher from Redis answering again to showing its v then", tot.CatchUp.Round(time.Millisecond))
	row("longest time from a same-length hand edit to every server's WARN", tot.EditSeen.Round(time.Millisecond))
	row("strsvr stopped at the end (SIGTERM) printing the group's v", fmt.Sprintf("%d of %d", tot.Finals, 3*len(all)))
	row("times the stopper (strsvr without --keep) found the group empty and stopped", tot.Stops)
	row("**of those, with a client of the group connected**", tot.Early)
	b.WriteString("\nFaults: ")
	var fs []string
	for _, k := range slices.Sorted(maps.Keys(tot.Faults)) {
		fs = append(fs, fmt.Sprintf("%s %d", k, tot.Faults[k]))
	}
	b.WriteString(strings.Join(fs, ", ") + ".\n")
	if len(tot.Problems) > 0 {
		b.WriteString("\nProblems (each replays with its seed):\n\n")
		for _, p := range tot.Problems {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(strings.SplitN(p, "\n", 2)[0], "|", "\\|"))
		}
	}
	return b.String()
}
