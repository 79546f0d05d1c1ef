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
			`answer is not whole copies of "abc": byte 43440 differs`},
		{"a copy short", []byte("abc"), bytes.Repeat([]byte("abc"), 20_000)[:59_999],
			`received 59999 bytes, not a whole number of copies of "abc"`},
		// What tmc saw when tms cut the message: copies of a prefix.
		{"copies of a cut message", long, bytes.Repeat(long[:43_440], 10),
			"answer is not whole copies of the 100000-byte string: byte 43440 differs"},
		{"a cut answer", long, bytes.Repeat(long, 3)[:243_440],
			"received 243440 bytes, not a whole number of copies of the 100000-byte string"},
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

// Copies of a periodic message cut at a multiple of its period are whole
// copies too: 20000 bytes of "ab" are 5000 copies of "abab", the answer
// a server gives when it took "ab" for the message "abab" (cut at a
// newline, by a quiet gap, or by tms.py's single recv). Only the count
// tells: ExpectCopies makes it part of the check.
func TestVerifierExpectCopiesCatchesACutAtAPeriod(t *testing.T) {
	cases := []struct {
		name   string
		msg    []byte
		answer []byte
		want   string
	}{
		{"half a periodic message", []byte("abab"), bytes.Repeat([]byte("ab"), 10_000),
			`received 20000 bytes, 5000 copies of "abab", not the 10000 expected`},
		{"a cut at a segment of x", bytes.Repeat([]byte("x"), 100_000), bytes.Repeat([]byte("x"), 10_000*14_480),
			"received 144800000 bytes, 1448 copies of the 100000-byte string, not the 10000 expected"},
		{"one copy too many", []byte("abc"), bytes.Repeat([]byte("abc"), 10_001),
			`received more than the 10000 copies of "abc" expected (30000 bytes)`},
	}
	for _, tc := range cases {
		v := NewVerifier(tc.msg)
		v.ExpectCopies(10_000)
		v.Write(tc.answer)
		err := v.Err()
		if !errors.Is(err, ErrWrongAnswer) || err.Error() != tc.want {
			t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
		}
		// Without an expected count, the same answer passes: the
		// tutorial's protocol has no count on the wire.
		v = NewVerifier(tc.msg)
		v.Write(tc.answer)
		if err := v.Err(); err != nil {
			t.Errorf("%s without ExpectCopies: %v", tc.name, err)
		}
	}
	v := NewVerifier([]byte("abc"))
	v.ExpectCopies(10_000)
	v.Write(bytes.Repeat([]byte("abc"), 10_000))
	if err := v.Err(); err != nil {
		t.Errorf("exactly 10000 copies: %v", err)
	}
}

// Wrong tells as soon as the answer can no longer be right: a byte that
// differs, or more bytes than the copies expected. Before, only Err at
// the end said so: tmc read 300 MB from a tms sending 100,000,000 copies
// before it said the count was wrong.
func TestVerifierWrongAsSoonAsItCannotBeRight(t *testing.T) {
	v := NewVerifier([]byte("abc"))
	v.ExpectCopies(10_000)
	v.Write(bytes.Repeat([]byte("abc"), 10_000))
	if err := v.Wrong(); err != nil {
		t.Fatalf("after exactly 10000 copies: %v", err)
	}
	v.Write([]byte("a"))
	err := v.Wrong()
	want := `received more than the 10000 copies of "abc" expected (30000 bytes)`
	if !errors.Is(err, ErrWrongAnswer) || !errors.Is(err, ErrMoreCopies) || err.Error() != want {
		t.Fatalf("one byte past the copies: %v, want %s (ErrMoreCopies)", err, want)
	}
	if err := v.Err(); !errors.Is(err, ErrMoreCopies) {
		t.Fatalf("Err: %v", err)
	}
	v = NewVerifier([]byte("abc"))
	v.Write([]byte("abcab"))
	if err := v.Wrong(); err != nil {
		t.Fatalf("a right start: %v", err)
	}
	v.Write([]byte("d"))
	if err := v.Wrong(); err == nil || err.Error() != `answer is not whole copies of "abc": byte 5 differs` {
		t.Fatalf("a byte that differs: %v", err)
	}
	v = NewVerifier([]byte("abc"))
	v.ExpectCopies(1 << 62) // the bytes expected do not fit an int64
	v.Write([]byte("abcabc"))
	if err := v.Wrong(); err != nil {
		t.Fatalf("huge count: %v", err)
	}
}

// The property behind Wrong, for any message, answer and count: Wrong
// fails exactly when the answer is not the start of the right one (msg
// want times; with no count, any number of copies), so failing is final;
// Err passes exactly when the answer is the whole right one.
func FuzzVerifierWrongIsFinal(f *testing.F) {
	f.Add([]byte("abc"), []byte("abcabcab"), uint8(3))
	f.Add([]byte("ab"), []byte("ababab"), uint8(2))
	f.Add([]byte("x"), []byte("xxy"), uint8(0))
	f.Fuzz(func(t *testing.T, msg, answer []byte, want uint8) {
		if len(msg) == 0 || len(msg) > 64 || len(answer) > 4096 {
			return
		}
		v := NewVerifier(msg)
		v.ExpectCopies(int64(want))
		copies := int(want)
		if want == 0 {
			copies = len(answer)/len(msg) + 1
		}
		right := bytes.Repeat(msg, copies)
		for off := 0; off < len(answer); { // in chunks of 1 to 5 bytes
			k := min(len(answer)-off, 1+int(answer[off])%5)
			v.Write(answer[off : off+k])
			off += k
			prefix := answer[:off]
			isStart := bytes.HasPrefix(right, prefix)
			if wrong := v.Wrong(); (wrong == nil) != isStart {
				t.Fatalf("msg %q, want %d, after %q: Wrong() = %v, but the right answer starts so: %v", msg, want, prefix, wrong, isStart)
			}
		}
		whole := len(answer)%len(msg) == 0 && bytes.HasPrefix(right, answer) && (want == 0 || len(answer) == len(right))
		if err := v.Err(); (err == nil) != whole {
			t.Fatalf("msg %q, want %d, answer %q: Err() = %v, whole right answer: %v", msg, want, answer, err, whole)
		}
	})
}
