package datalog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Read never panics, never returns more than the input holds, and Tail
// judges whatever follows the good part without panicking.
func FuzzRead(f *testing.F) {
	line, h := HeaderFor(3, 0x1234567)
	f.Add(h.AppendRecords(bytes.Clone(line), int64(len(line)), []byte("abc")))
	f.Add([]byte(Magic1 + "\x00\x00\x00\x01\x00\x00\x00\x00a"))
	f.Add([]byte(Magic1))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, v, good, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if good > int64(len(b)) || len(v) > len(b) {
			t.Fatalf("decoded %d bytes (good %d) from %d", len(v), good, len(b))
		}
		h.Tail(b[good:], good)
	})
}

// The header's checksum covers its version: a header of one version that
// is edited to name another is refused, whatever it names.
func TestHeaderNamesItsVersion(t *testing.T) {
	for _, from := range []int{2, 3} {
		line, _ := HeaderFor(from, 0xdeadbeef)
		for _, to := range "0123456789x" {
			if int(to-'0') == from {
				continue
			}
			d := bytes.Clone(line)
			d[len(prefix)] = byte(to)
			if h, err := ParseHeader(d); err == nil {
				t.Errorf("v%d header naming %c read as v%d", from, to, h.Version)
			}
		}
	}
	line, _ := HeaderFor(3, 7)
	for n := range len(line) {
		if _, err := ParseHeader(line[:n]); !errors.Is(err, ErrTornHeader) {
			t.Errorf("header cut at %d: %v, want ErrTornHeader", n, err)
		}
	}
	var he *HeaderError
	if _, err := ParseHeader([]byte(strings.Replace(string(line), "v3", "v5", 1))); !errors.As(err, &he) || !strings.Contains(err.Error(), "newer tcplab") {
		t.Errorf("v5 header: %v", err)
	}
}

// What Tail cuts and what it refuses, one case per rule.
func TestTail(t *testing.T) {
	line, h := HeaderFor(3, 0x1234567)
	off := int64(len(line))
	rec := func(p []byte) []byte { return h.AppendRecords(nil, off, p) }
	big := rec(bytes.Repeat([]byte("x"), 3*Sector))
	zeroedSector := bytes.Clone(big)
	start := (int(off)+RecordHeader+Sector-1)/Sector*Sector - int(off) // first sector boundary in the data
	clear(zeroedSector[start : start+Sector])
	flipped := bytes.Clone(big)
	flipped[RecordHeader+700] ^= 1
	lengthFlipped := bytes.Clone(big)
	lengthFlipped[6] ^= 0x80 // n grows past the end of the file
	two := append(bytes.Clone(big), h.AppendRecords(nil, off+int64(len(big)), []byte("next"))...)
	two[RecordHeader+3] ^= 1
	cases := []struct {
		name string
		rest []byte
		cut  bool
	}{
		{"nothing", nil, true},
		{"part of a header", big[:RecordHeader-1], true},
		{"an incomplete record", big[:len(big)-1], true},
		{"a whole record with a zeroed sector", zeroedSector, true},
		{"zeros", make([]byte, 100), true},
		{"zeros longer than a record", make([]byte, RecordHeader+MaxRecord+1), false},
		{"a whole record, one bit flipped", flipped, false},
		{"a length flipped past the end", lengthFlipped, false},
		{"a bad record with a valid one after", two, false},
		{"a bad record with bytes after", append(bytes.Clone(flipped), 1), false},
		{"garbage", []byte("this is not a record at all"), false},
		{"the record at another offset", h.AppendRecords(nil, off+1, []byte("abc")), false},
	}
	for _, c := range cases {
		if v := h.Tail(c.rest, off); v.Cut != c.cut {
			t.Errorf("%s: cut %t (%s), want %t", c.name, v.Cut, v.Why, c.cut)
		}
	}
}

// WrittenAt finds the offset a record was written at from its header
// alone, wherever the record now lies, and none for a record whose
// letters were changed.
func TestWrittenAt(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 3))
	for range 2000 {
		_, h := NewHeader()
		off := r.Int64N(1 << 32)
		data := make([]byte, 1+r.IntN(64))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		rec := h.AppendRecords(nil, off, data)
		got, n, ok := h.WrittenAt(rec, 1<<32)
		if !ok || got != off || n != len(data) {
			t.Fatalf("record written at %d with %d letters: WrittenAt says %d, %d, %t", off, len(data), got, n, ok)
		}
		if _, _, ok := h.WrittenAt(rec, off); ok {
			t.Fatalf("record written at %d found below the limit %d", off, off)
		}
		rec[len(rec)-1] ^= 1
		if _, _, ok := h.WrittenAt(rec, 1<<32); ok {
			t.Fatalf("record with a changed letter taken as written at %d", off)
		}
	}
}
