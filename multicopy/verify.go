package multicopy

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrWrongAnswer is matched (errors.Is) by Verifier.Err's error when the
// answer is not whole copies of the message.
var ErrWrongAnswer = errors.New("wrong answer")

// ErrMoreCopies is matched, besides ErrWrongAnswer, when the answer is
// longer than the copies expected (ExpectCopies): most likely a server
// told to send more copies than the client expects.
var ErrMoreCopies = errors.New("more copies than expected")

// wrongAnswer is Verifier.Err's error: its text is the one line a user
// sees, and it is ErrWrongAnswer (and, when more, ErrMoreCopies) for
// errors.Is.
type wrongAnswer struct {
	msg  string
	more bool
}

func (e wrongAnswer) Error() string { return e.msg }
func (e wrongAnswer) Is(target error) bool {
	return target == ErrWrongAnswer || (e.more && target == ErrMoreCopies)
}

// verifyBlock is about how many bytes of whole copies a Verifier compares
// against at once: a chunk is checked with a few long comparisons, not
// one per copy, whatever the message's length.
const verifyBlock = 64 << 10

// Verifier checks, as the answer streams in, that it is whole copies of
// the message sent: the client's side of the contract, so that a server
// that cut the message, or a transfer that lost bytes, can never pass for
// a good answer. It keeps only the message and one block of copies of it
// (at most about len(msg) + 64 kB), whatever the answer's length.
type Verifier struct {
	msg   []byte
	block []byte // whole copies of msg, at least len(msg)+verifyBlock long
	off   int    // offset of the next byte within its copy
	total int64  // bytes seen
	bad   int64  // offset of the first byte that differs, or -1
	want  int64  // copies expected (ExpectCopies), or 0 for any number
}

// NewVerifier returns a Verifier of answers to msg, which must not be
// empty. msg is not retained.
func NewVerifier(msg []byte) *Verifier {
	if len(msg) == 0 {
		panic("multicopy: NewVerifier of an empty message")
	}
	copies := (verifyBlock + len(msg) - 1) / len(msg)
	return &Verifier{
		msg:   bytes.Clone(msg),
		block: bytes.Repeat(msg, copies+1),
		bad:   -1,
	}
}

// ExpectCopies makes the number of copies part of the check: Err then
// also fails unless the answer is exactly n copies (n ≤ 0: any number).
// Whole copies alone cannot tell a cut message from the whole one when the
// message repeats itself: copies of "ab" are whole copies of "abab", and
// copies of 14,480 x's are whole copies of 100,000 x's whenever the
// lengths fit. The tutorial's protocol carries no count, but its server
// always sends 10,000 copies (DefaultCopies), as tcplab's does by default.
func (v *Verifier) ExpectCopies(n int64) { v.want = max(n, 0) }

// Write checks the next chunk of the answer. It never fails; Err says
// what it found.
func (v *Verifier) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		// block[off:] starts at the same place in a copy as p does, and
		// is at least verifyBlock long.
		k := min(len(p), len(v.block)-v.off)
		if v.bad < 0 && !bytes.Equal(p[:k], v.block[v.off:v.off+k]) {
			for i := range k {
				if p[i] != v.block[v.off+i] {
					v.bad = v.total + int64(i)
					break
				}
			}
		}
		v.total += int64(k)
		v.off = (v.off + k) % len(v.msg)
		p = p[k:]
	}
	return n, nil
}

// Wrong returns Err's error as soon as the answer so far can no longer be
// the start of a right one: a byte differs, or (with ExpectCopies) it is
// longer than the copies expected. It is nil while more bytes could still
// make the answer right, so a client can stop reading at the first sign
// instead of at the end of a long transfer.
func (v *Verifier) Wrong() error {
	if v.bad >= 0 || v.tooLong() {
		return v.Err()
	}
	return nil
}

// tooLong reports whether more bytes came than the copies expected
// (counted in copies: the bytes may not fit an int64).
func (v *Verifier) tooLong() bool {
	got := v.total / int64(len(v.msg))
	return v.want > 0 && (got > v.want || got == v.want && v.off != 0)
}

// Total is the number of bytes checked so far.
func (v *Verifier) Total() int64 { return v.total }

// Err returns nil if everything written so far is whole copies of the
// message, as many as ExpectCopies said if it was called (otherwise no
// bytes at all is zero copies: whether that is an answer is the caller's
// business), or an error matching ErrWrongAnswer that says in
// one line where the answer first went wrong.
func (v *Verifier) Err() error {
	if v.bad >= 0 {
		return wrongAnswer{msg: fmt.Sprintf("answer is not whole copies of %s: byte %d differs", v.describe(), v.bad)}
	}
	if v.tooLong() {
		bytes := ""
		if v.want <= math.MaxInt64/int64(len(v.msg)) {
			bytes = fmt.Sprintf(" (%d bytes)", v.want*int64(len(v.msg)))
		}
		return wrongAnswer{msg: fmt.Sprintf("received more than the %d copies of %s expected%s", v.want, v.describe(), bytes), more: true}
	}
	if v.off != 0 {
		return wrongAnswer{msg: fmt.Sprintf("received %d bytes, not a whole number of copies of %s", v.total, v.describe())}
	}
	if got := v.total / int64(len(v.msg)); v.want > 0 && got != v.want {
		return wrongAnswer{msg: fmt.Sprintf("received %d bytes, %d copies of %s, not the %d expected",
			v.total, got, v.describe(), v.want)}
	}
	return nil
}

// describe names the message: quoted if short, by its length if not.
func (v *Verifier) describe() string {
	if len(v.msg) <= 40 {
		return strconv.Quote(string(v.msg))
	}
	return fmt.Sprintf("the %d-byte string", len(v.msg))
}
