package multicopy

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// The hold outlasts as many of the client's tries at a segment still due
// as holdTries says, from the moment its path is known to work, for any
// round trip, timeout and moment (a seeded search, printed on failure):
// a segment first sent at T0 (no sooner than a round trip before the
// message's last byte arrived) is sent again at T0 + RTO (2^k - 1), and
// the client's RTO is taken as Linux computes its own from the round
// trip tms measures.
func TestHoldCoversTheTriesItPromises(t *testing.T) {
	for seed := range uint64(2000) {
		r := rand.New(rand.NewPCG(seed, 0))
		rtt := time.Duration(r.Int64N(int64(500 * time.Millisecond)))
		st := tcpsock.Stats{RTT: rtt, RTTVar: time.Duration(r.Int64N(int64(rtt/2 + 1)))}
		last := time.Unix(1000, 0)
		alive := last.Add(time.Duration(r.Int64N(int64(20 * time.Second))))
		trouble, pieces := r.IntN(2) == 0, r.IntN(2) == 0
		tries := holdTries(trouble, pieces)
		if pieces && tries < 3 {
			t.Fatalf("seed %d: a message in pieces gets %d tries, want at least 3", seed, tries)
		}
		until := holdUntil(st, last, alive, tries)
		rto := rtt + max(4*st.RTTVar, minRTO)
		t0 := last.Add(-rtt)
		covered := 0
		for k := 1; k < 40 && covered < tries; k++ {
			at := t0.Add(rto * time.Duration(1<<k-1))
			if at.Before(alive) {
				continue
			}
			if at.After(until) {
				t.Fatalf("seed %d: rtt %s rttvar %s, alive %s after the last byte, %d tries: try %d at %s is after the hold's end %s",
					seed, rtt, st.RTTVar, alive.Sub(last), tries, k, at.Sub(last), until.Sub(last))
			}
			covered++
		}
	}
}
