package status

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// Within Fresh, a command runs once, however the requests for it
// interleave: a request that finds no fresh output and then no run in
// flight must take the output of a run that finished in between, as
// 3f5aa32's Runner did (it looked at both under one lock), not run the
// command again. The requests race on purpose: a run is instant, so some
// miss the fresh output just before it is stored and reach the flight
// just after it has ended. That moment comes once per Runner, hence the
// many rounds; before the fix about one round in fifty ran the command
// twice or three times (measured on this machine).
func TestRunnerRunsOnceWithinFresh(t *testing.T) {
	for round := range 300 {
		var runs atomic.Int64
		r := &Runner{Fresh: 1 << 62}
		c := countingCommand(&runs, 0)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if _, err := r.Output(context.Background(), c); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if n := runs.Load(); n != 1 {
			t.Fatalf("round %d: 800 requests within Fresh ran the command %d times, want 1", round, n)
		}
	}
}
