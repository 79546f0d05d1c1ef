package storefaults

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// The short budget of the fault checker (the long one: go run ./bench
// -only storefaults): every kind of fault at least once (10 steps), with 3 strsvr
// processes and their clients, and no v shown that is not a prefix of the
// group's v, no watcher stale. TCPLAB_STOREFAULTS_SEED replays a seed;
// with TCPLAB_STOREFAULTS_STEPS=30 and TCPLAB_STOREFAULTS_LONGEST=12s, a
// seed of the bench.
func TestStoreFaults(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TCPLAB_STOREFAULTS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("TCPLAB_STOREFAULTS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay: TCPLAB_STOREFAULTS_SEED=%d go test -run TestStoreFaults ./internal/storefaults/)", seed, seed)
	bin := os.Getenv("TCPLAB_STOREFAULTS_BINARY") // to try the checker on another build
	if bin == "" {
		bin = testkit.Binary(t)
	}
	steps, longest := 10, 4*time.Second
	if s := os.Getenv("TCPLAB_STOREFAULTS_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("TCPLAB_STOREFAULTS_STEPS=%q: %v", s, err)
		}
		steps = n
	}
	if s := os.Getenv("TCPLAB_STOREFAULTS_LONGEST"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TCPLAB_STOREFAULTS_LONGEST=%q: %v", s, err)
		}
		longest = d
	}
	res, err := Run(context.Background(), Config{
		Binary:  bin,
		Dir:     t.TempDir(),
		Port:    func() (int, error) { return testkit.StaticPort(t), nil },
		Seed:    seed,
		Steps:   steps,
		Longest: longest,
		Logf:    t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d steps %v in %s: %d letters answered, %d v's shown, %d checks, %d told, window %d, longest catch-up %s, edit seen in %s, finals %d, stopper stops %d",
		res.Steps, res.Faults, res.Took.Round(time.Second), res.Letters, res.Shown, res.Checks, res.Told, res.Window, res.CatchUp.Round(time.Millisecond), res.EditSeen.Round(time.Millisecond), res.Finals, res.Stops)
	for _, p := range res.Problems {
		t.Error(p)
	}
	if res.Letters == 0 || res.Finals != 3 {
		t.Errorf("the run did not run: %d letters, %d finals", res.Letters, res.Finals)
	}
}
