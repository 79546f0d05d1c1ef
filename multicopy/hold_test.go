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
// trip tms measures, or from a handshake whose SYN-ACK went again.
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
		// A third of the handshakes had SYN-ACKs sent again: the client's
		// timeout is then its estimator's after such a first sample.
		var hs handshakeRetries
		if r.IntN(3) == 0 {
			hs.synAcks = 1 + r.Int64N(3)
			hs.samples = r.Int64N(40)
			hs.windows = r.Int64N(hs.samples + 1)
		}
		until := holdUntil(st, last, alive, tries, hs)
		rto := max(rtt+max(4*st.RTTVar, minRTO), hs.peerRTO(rtt))
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

// linuxRTOAfter follows Linux's estimator: the figures are what ss -ti
// showed for a client on the lab link whose SYN-ACK was lost once (its
// first sample 1,004 ms), after 0 to 4 pieces typed with Nagle, each
// acknowledged in 60 µs (rto 3012, 2952, 2888, 2820, 2752 ms), within a
// millisecond of rounding in the kernel's jiffies.
func TestLinuxRTOAfterALostSynAck(t *testing.T) {
	want := []time.Duration{3012, 2952, 2888, 2820, 2752}
	for n, w := range want {
		got := linuxRTOAfter(1004*time.Millisecond, 60*time.Microsecond, int64(n), int64(n))
		if d := got - w*time.Millisecond; d < -5*time.Millisecond || d > 5*time.Millisecond {
			t.Errorf("after %d samples: %s, the kernel's was %d ms", n, got, w)
		}
	}
	// Fewer round trips than samples (a message written at once, in
	// flights) leave the variance, and the timeout, higher.
	if a, b := linuxRTOAfter(time.Second, time.Millisecond, 20, 20), linuxRTOAfter(time.Second, time.Millisecond, 20, 5); b <= a {
		t.Errorf("20 samples in 5 round trips: %s, not above 20 round trips' %s", b, a)
	}
	// No retransmitted SYN-ACK: nothing beyond tms's own estimate.
	if rto := (handshakeRetries{samples: 3, windows: 3}).peerRTO(time.Millisecond); rto != 0 {
		t.Errorf("a handshake without a SYN-ACK sent again bounds the client's timeout at %s", rto)
	}
	if rto := (handshakeRetries{synAcks: 2, samples: 1, windows: 1}).peerRTO(time.Millisecond); rto < 8*time.Second {
		t.Errorf("two SYN-ACKs sent again (a first sample up to 3 s): %s", rto)
	}
}
