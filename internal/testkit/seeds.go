package testkit

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// RunSeeds runs check as a subtest once per seed of a seeded checker: n
// random seeds, or the one in the environment variable env (to replay a
// failure). Each seed is logged with the line that replays it; the first
// seed that fails ends the run.
func RunSeeds(t *testing.T, env string, n int, check func(t *testing.T, seed uint64)) {
	t.Helper()
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rand.Uint64()
	}
	if s := os.Getenv(env); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		seeds = []uint64{seed}
	}
	for _, seed := range seeds {
		t.Logf("seed %d (%s=%d replays it)", seed, env, seed)
		if !t.Run(fmt.Sprint(seed), func(t *testing.T) { check(t, seed) }) {
			return
		}
	}
}
