package multicopy

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// feed writes answer to a new Verifier of msg in chunks of random sizes up
// to maxChunk and returns its verdict.
func feed(msg, answer []byte, maxChunk int, seed uint64) error {
	v := NewVerifier(msg)
	r := rand.New(rand.NewPCG(seed, 2))
	for len(answer) > 0 {
		k := min(len(answer), 1+r.IntN(maxChunk))
		v.Write(answer[:k])
		answer = answer[k:]
	}
	return v.Err()
}

func TestVerifierAcceptsWholeCopiesInAnyChunks(t *testing.T) {
	long := labMessage(7)
	for _, msg := range [][]byte{[]byte("a"), []byte("abc"), []byte("hello, world\n"), long} {
		answer := bytes.Repeat(msg, 10_000*3/len(msg)+2)
		for _, maxChunk := range []int{1, 7, 1448, 65536, 1 << 20} {
			if maxChunk == 1 && len(answer) > 100_000 {
				continue
			}
			if err := feed(msg, answer, maxChunk, uint64(maxChunk)); err != nil {
				t.Errorf("%d copies of %d bytes in chunks up to %d: %v", len(answer)/len(msg), len(msg), maxChunk, err)
			}
		}
	}
	if err := NewVerifier([]byte("abc")).Err(); err != nil {
		t.Errorf("no answer at all: %v (zero copies is the caller's business)", err)
	}
}

func TestVerifierRefusesWhatIsNotWholeCopies(t *testing.T) {
	long := labMessage(8)
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x20
		return b
	}
	cases := []struct {
		name   string
		msg    []byte
		answer []byte
		want   string
	}{
		{"a byte changed", []byte("abc"), flip(bytes.Repeat([]byte("abc"), 20_000), 43_440),
			`answer is not whole copies of "abc": byte 43,440 differs`},
		{"a copy short", []byte("abc"), bytes.Repeat([]byte("abc"), 20_000)[:59_999],
			`received 59,999 bytes, not a whole number of copies of "abc"`},
		// What tmc saw when tms cut the message: copies of a prefix.
		{"copies of a cut message", long, bytes.Repeat(long[:43_440], 10),
			"answer is not whole copies of the 100,000-byte string: byte 43,440 differs"},
		{"a cut answer", long, bytes.Repeat(long, 3)[:243_440],
			"received 243,440 bytes, not a whole number of copies of the 100,000-byte string"},
		{"a byte lost", []byte("abcd"), append(bytes.Repeat([]byte("abcd"), 3)[:5], bytes.Repeat([]byte("abcd"), 3)[6:]...),
			`answer is not whole copies of "abcd": byte 5 differs`},
	}
	for _, tc := range cases {
		for _, maxChunk := range []int{1, 1448, 1 << 20} {
			err := feed(tc.msg, tc.answer, maxChunk, 3)
			if !errors.Is(err, ErrWrongAnswer) || err.Error() != tc.want {
				t.Errorf("%s (chunks up to %d): %v\nwant %s", tc.name, maxChunk, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: more than one line", tc.name)
			}
		}
	}
}

// The check streams: its memory is the message and one block, not the
// answer, and a chunk costs no allocation.
func TestVerifierMemoryIsBoundedByTheMessage(t *testing.T) {
	msg := []byte("abc")
	v := NewVerifier(msg)
	chunk := bytes.Repeat(msg, 1<<20/3)
	allocs := testing.AllocsPerRun(100, func() { v.Write(chunk) })
	if allocs != 0 {
		t.Errorf("Write allocates %v times per chunk", allocs)
	}
	if len(v.block) > len(msg)+verifyBlock+len(msg) {
		t.Errorf("block of %d bytes for a 3-byte message", len(v.block))
	}
	if err := v.Err(); err != nil || v.Total() != 101*int64(len(chunk)) {
		t.Errorf("after %d bytes: %v, total %d", 101*len(chunk), err, v.Total())
	}
}
