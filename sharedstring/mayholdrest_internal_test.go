package sharedstring

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// mayHoldRestNaive is mayHoldRest by its definition, quadratic.
func mayHoldRestNaive(prev, r []byte, last byte) bool {
	for tl := 1; len(prev)+2*tl < len(r); tl++ {
		rest := r[:tl]
		if rest[tl-1] == last && bytes.HasPrefix(r[tl:], append(append([]byte{}, prev...), rest...)) {
			return true
		}
	}
	return false
}

// The checker of the rule that closes issue 18's last case: on seeded
// random replies over small alphabets (where v repeats itself, as typing
// "aaaa" does), every cut reply whose rest came with the next reply is
// either caught by the content check (the next "reply" does not begin
// with the one shown) or flagged by mayHoldRest; a next reply one letter
// longer than a whole reply is never flagged; and mayHoldRest agrees with
// its quadratic definition. A failure prints the seed.
func TestMayHoldRestChecker(t *testing.T) {
	for seed := uint64(1); seed <= 3000; seed++ {
		r := rand.New(rand.NewPCG(seed, 18))
		alpha := "ab"[:1+r.IntN(2)]
		word := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = alpha[r.IntN(len(alpha))]
			}
			return b
		}
		// The server's reply v1 to letter last, shown cut after k bytes.
		last := alpha[r.IntN(len(alpha))]
		v1 := append(word(1+r.IntN(40)), last)
		k := 1 + r.IntN(len(v1)-1)
		prev, rest := v1[:k], v1[k:]
		// The next reply: v1, what others typed, then our letter.
		b := alpha[r.IntN(len(alpha))]
		v2 := append(append(append([]byte{}, v1...), word(r.IntN(4))...), b)
		got := append(append([]byte{}, rest...), v2...)
		if bytes.HasPrefix(got, prev) && !mayHoldRest(prev, got, prev[len(prev)-1]) && prev[len(prev)-1] == last {
			t.Fatalf("seed %d: shown %q, rest %q, next reply %q: read as one reply %q, not flagged", seed, prev, rest, v2, got)
		}
		// A whole reply w and the next, one letter longer: never flagged.
		w := append(word(r.IntN(40)), last)
		if mayHoldRest(w, append(append([]byte{}, w...), b), last) {
			t.Fatalf("seed %d: %q then %q flagged", seed, w, append(w, b))
		}
		// Agreement with the definition, on any input.
		p, q := word(r.IntN(12)), word(r.IntN(30))
		if mayHoldRest(p, q, b) != mayHoldRestNaive(p, q, b) {
			t.Fatalf("seed %d: mayHoldRest(%q, %q, %q) = %v, its definition says otherwise", seed, p, q, b, mayHoldRest(p, q, b))
		}
	}
}
