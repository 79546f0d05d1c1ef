//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/nemesis"
	"github.com/tcplab/tcplab/internal/netlab"
)

// The nemesis section: internal/nemesis's checker with its long budget.
// Every client kind (tmc, tmc.py, a slow typer, strclnt classic and
// framed, strclnt.py, wps, wps.py) runs against its tcplab server across
// the lab link while a seeded random fault schedule (loss bursts, one-
// and two-way blackouts of 0.5-20 s, ACK-path stalls, rate changes, MTU
// blackholes, resets) hits it; a client that ends cleanly must hold
// exactly the right answer. The counts go to docs/reliability.md.
//
// NEMESIS_RUNS sets the runs per kind (default 30; -quick: 2); seeds are
// 1..N, so a run of the section is itself a replay. TCPLAB_NEMESIS=KIND:SEED
// runs only that one.
func init() {
	register(section{name: "nemesis", order: 55, run: benchNemesis, doc: "docs/reliability.md"})
}

func benchNemesis(ctx context.Context, env *benchEnv) (string, error) {
	if err := netlab.Check(); err != nil {
		return "", err
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("python3: %w", err)
	}
	nenv := nemesis.Env{Tcplab: env.tcplab, Python: python, Testdata: filepath.Join(env.root, "testdata")}
	perKind := 30
	if s := os.Getenv("NEMESIS_RUNS"); s != "" {
		if perKind, err = strconv.Atoi(s); err != nil || perKind < 1 {
			return "", fmt.Errorf("NEMESIS_RUNS=%s: want a positive number", s)
		}
	}
	if env.quick {
		perKind = 2
	}
	type job struct {
		kind nemesis.Kind
		seed uint64
	}
	var jobs []job
	if one := os.Getenv("TCPLAB_NEMESIS"); one != "" {
		k, s, _ := strings.Cut(one, ":")
		kind, err := nemesis.ParseKind(k)
		if err != nil {
			return "", err
		}
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return "", fmt.Errorf("TCPLAB_NEMESIS=%s: want KIND:SEED", one)
		}
		jobs = append(jobs, job{kind, seed})
	} else {
		for seed := uint64(1); seed <= uint64(perKind); seed++ {
			for _, k := range nemesis.Kinds {
				jobs = append(jobs, job{k, seed})
			}
		}
	}
	results := make([]nemesis.Result, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, 6)
	var wg sync.WaitGroup
	start := time.Now()
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = nemesis.Run(ctx, nenv, j.kind, j.seed)
			if errs[i] != nil {
				env.logf("nemesis: %s seed %d: lab error: %v", j.kind, j.seed, errs[i])
				return
			}
			env.logf("nemesis: %s", results[i])
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	type counts struct{ runs, hit, exact, honest, wrong, labErr int }
	byKind := map[nemesis.Kind]*counts{}
	var total counts
	var wrong, honest []string
	for i, r := range results {
		c := byKind[jobs[i].kind]
		if c == nil {
			c = &counts{}
			byKind[jobs[i].kind] = c
		}
		if errs[i] != nil {
			c.labErr++
			total.labErr++
			continue
		}
		c.runs++
		total.runs++
		if r.Hit {
			c.hit++
			total.hit++
		}
		switch r.Outcome {
		case nemesis.Exact:
			c.exact++
			total.exact++
		case nemesis.Honest:
			c.honest++
			total.honest++
			honest = append(honest, r.String())
		case nemesis.Wrong:
			c.wrong++
			total.wrong++
			wrong = append(wrong, r.String())
		}
	}
	var b strings.Builder
	b.WriteString("## Nemesis: random fault schedules, every client kind\n\n")
	fmt.Fprintf(&b, "`go run ./bench -only nemesis` (NEMESIS_RUNS=%d per kind, seeds 1 to %d, up to 6 runs at a time, %s in all). ", perKind, perKind, time.Since(start).Round(time.Second))
	b.WriteString("Each run: a fresh lab link, the pair's tcplab server in one namespace, the client in the other, and a fault schedule drawn from the seed (netlab.NewSchedule: 1 to 3 faults among loss bursts of 5-50%, one- and two-way blackouts of 0.5-20 s, ACK-path stalls, rate changes to 64 kbit/s-5 Mbit/s, MTU blackholes, resets) starting with the client; strclnt-repeat (v of one repeated letter) has its own: the server's side at 200 kbit/s and dark for 3.2-8 s from a moment of the first reply. ")
	b.WriteString("Exact: the client ended cleanly (exit 0) with exactly the right answer. Honest: it exited non-zero, or hung and was killed 90 s after the last fault (the tutorial's clients have no timeout). Wrong: exit 0 with anything else.\n\n")
	b.WriteString("Hit: a fault began while the client still ran (the others ended first, on a link that was still clean).\n\n")
	b.WriteString("| client kind | runs | hit | exact | honest failure | wrong |\n|---|---:|---:|---:|---:|---:|\n")
	for _, k := range nemesis.Kinds {
		c := byKind[k]
		if c == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", k, c.runs, c.hit, c.exact, c.honest, c.wrong)
	}
	fmt.Fprintf(&b, "| all | %d | %d | %d | %d | %d |\n", total.runs, total.hit, total.exact, total.honest, total.wrong)
	if total.labErr > 0 {
		fmt.Fprintf(&b, "\n%d runs had a lab error (no verdict) and are not counted.\n", total.labErr)
	}
	if len(wrong) > 0 {
		b.WriteString("\nWrong answers (replay one with `TCPLAB_NEMESIS=KIND:SEED go run ./bench -only nemesis -out /tmp/x.md`):\n\n")
		for _, w := range wrong {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	if len(honest) > 0 {
		b.WriteString("\n<details><summary>Honest failures</summary>\n\n")
		for _, h := range honest {
			fmt.Fprintf(&b, "- %s\n", h)
		}
		b.WriteString("\n</details>\n")
	}
	return b.String(), nil
}
