package main

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/nemesis"
	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/testkit"
)

// The nemesis checker's short budget (internal/nemesis; the long one is
// `go run ./bench -only nemesis`): for each client kind, one random fault
// schedule (a new seed each run, printed, so that CI keeps looking for
// counterexamples) applied while the client talks to its server across the
// lab link, and one invariant: a client that ends cleanly holds exactly
// the right answer. Blackouts are kept short here (at most 4 s) so that a
// run takes seconds.
//
// TCPLAB_NEMESIS=KIND:SEED replays one run (the failure message prints the
// line); TCPLAB_NEMESIS_RUNS=N runs N seeds per kind; TCPLAB_NEMESIS_KINDS
// is a comma-separated list of kinds, or "all" (the default).
func TestNemesisCleanEndsAreExact(t *testing.T) {
	if err := netlab.Check(); err != nil {
		t.Skip(err)
	}
	env := nemesis.Env{
		Tcplab:   testkit.Binary(t),
		Python:   testkit.Python3(t),
		Testdata: testkit.Testdata(""),
		Faults:   netlab.ScheduleOptions{Span: 2 * time.Second, MaxBlackout: 4 * time.Second},
		Limit:    45 * time.Second,
	}
	type run struct {
		kind nemesis.Kind
		seed uint64
	}
	var runs []run
	if one := os.Getenv("TCPLAB_NEMESIS"); one != "" {
		k, s, _ := strings.Cut(one, ":")
		kind, err := nemesis.ParseKind(k)
		if err != nil {
			t.Fatal(err)
		}
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TCPLAB_NEMESIS=%s: want KIND:SEED", one)
		}
		runs = append(runs, run{kind, seed})
		env.Faults = netlab.ScheduleOptions{} // as the bench draws them
		env.Limit = 0
	} else {
		kinds := nemesis.Kinds
		switch names := os.Getenv("TCPLAB_NEMESIS_KINDS"); names {
		case "", "all":
		default:
			kinds = nil
			for _, n := range strings.Split(names, ",") {
				k, err := nemesis.ParseKind(strings.TrimSpace(n))
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, k)
			}
		}
		n := 1
		if s := os.Getenv("TCPLAB_NEMESIS_RUNS"); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n < 1 {
				t.Fatalf("TCPLAB_NEMESIS_RUNS=%s: want a positive number", s)
			}
		}
		for range n {
			for _, k := range kinds {
				runs = append(runs, run{k, rand.Uint64() % 1_000_000})
			}
		}
	}
	for _, r := range runs {
		t.Run(string(r.kind)+"/"+strconv.FormatUint(r.seed, 10), func(t *testing.T) {
			t.Parallel()
			res, err := nemesis.Run(context.Background(), env, r.kind, r.seed)
			if err != nil {
				t.Fatalf("%v (%s)", err, res.Replay())
			}
			t.Log(res)
			if res.Outcome == nemesis.Wrong {
				t.Errorf("a clean end with a wrong answer: %s", res)
			}
		})
	}
}
