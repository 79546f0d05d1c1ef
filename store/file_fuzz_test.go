package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcplab/tcplab/internal/datalog"
	"github.com/tcplab/tcplab/store"
)

// The checker of the data file: from a log of answered letters, any edit
// (bits flipped, the file cut, byte ranges duplicated, deleted, moved or
// zeroed, garbage appended, several of these at once) either is refused
// with the file unchanged, or recovers exactly a prefix of the answered
// letters, losing nothing but a tail that shows the signs of a torn,
// never-answered write.
//
// The property, for an edited file E of an original log whose records are
// r_0 .. r_m-1, record j at [o_j, e_j):
//
//   - refused: E is on disk byte for byte, and nothing else was left in
//     its directory;
//   - accepted, with v: v is the letters of r_0 .. r_j-1 for some j; every
//     r_i with i >= j is no longer intact at its place in E (an answered
//     record still there was never dropped); the log on disk now reads
//     back as v, whole; and if j < m and E reaches past o_j, what E holds
//     from o_j looks torn: E ends inside r_j, or ends exactly at e_j with a
//     zeroed sector in r_j's data, or is zeros alone from o_j, at most one
//     record long.
//
// One input in four starts from a log of an older format (v1 or v2),
// which OpenFile upgrades. Their records do not know their place, so a
// record moved in them cannot be seen; for them the property is that the
// upgrade is faithful: refused with the file unchanged, or the letters of
// the valid records the old log holds in order, rewritten whole in the
// current format, the original (less a torn tail) kept beside it.
func FuzzOpenFileEdits(f *testing.F) {
	f.Add(uint64(1), uint8(0), []byte{})
	f.Add(uint64(2), uint8(0), []byte{opFlip, 0, 60, 3, 0, 0, 0})
	f.Add(uint64(3), uint8(0), []byte{opDuplicate, 0, 45, 0, 90, 0, 200})
	f.Add(uint64(4), uint8(0), []byte{opMove, 0, 45, 0, 90, 1, 0})
	f.Add(uint64(5), uint8(0), []byte{opZero, 1, 0, 255, 255, 0, 0})
	f.Add(uint64(6), uint8(0), []byte{opTruncate, 2, 0, 0, 0, 0, 0})
	f.Add(uint64(7), uint8(0), []byte{opAppend, 0, 0, 0, 20, 7, 7})
	f.Add(uint64(8), uint8(0), []byte{opDelete, 0, 50, 0, 60, 0, 0})
	f.Add(uint64(9), uint8(2), []byte{opZero, 0, 60, 0, 70, 0, 0})
	f.Add(uint64(10), uint8(3), []byte{opFlip, 0, 30, 5, 0, 0, 0})
	f.Add(uint64(11), uint8(0), []byte{opSet, 0, 19, '1', 0, 0, 0, opSet, 0, 20, '\n', 0, 0, 0})
	f.Add(uint64(12), uint8(0), []byte{opDuplicate, 0, 39, 255, 255, 255, 255})
	f.Add(uint64(13), uint8(0), []byte{opDuplicate, 0x80, 1, 0x80, 2, 0x80, 3})
	f.Add(uint64(14), uint8(0), []byte{opMove, 0x80, 1, 0x80, 2, 0x80, 4})
	dir, err := os.MkdirTemp(fuzzBase(), "tcplab-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "v.log")
	f.Fuzz(func(t *testing.T, seed uint64, format uint8, ops []byte) {
		version := []int{3, 3, 2, 1}[format%4]
		orig, recs := fuzzLog(seed, version)
		edited := applyEdits(orig, recs, ops)
		defer func() { // one input at a time in each process: the next starts empty
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}()
		if err := os.WriteFile(path, edited, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := store.OpenFile(path, store.FileOptions{Fsync: store.FsyncInterval})
		if err != nil {
			now, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(now, edited) {
				t.Fatalf("refused (%v) and changed the file: %d bytes, now %d (%v)", err, len(edited), len(now), rerr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Fatalf("refused (%v) and left %d files", err, len(entries))
			}
			return
		}
		v, _ := s.Value(context.Background())
		v = bytes.Clone(v)
		kept := s.Upgraded()
		if err := s.Close(); err != nil {
			t.Fatalf("Close after open: %v", err)
		}
		now, _ := os.ReadFile(path)
		h, back, good, err := datalog.Read(bytes.NewReader(now))
		if err != nil || h.Version != datalog.Version || good != int64(len(now)) || !bytes.Equal(back, v) {
			t.Fatalf("the log after opening reads back as %d letters of %d (v%d, good %d of %d, %v)", len(back), len(v), h.Version, good, len(now), err)
		}
		if version < datalog.Version {
			_, old, oldGood, err := datalog.Read(bytes.NewReader(edited))
			if errors.Is(err, datalog.ErrTornHeader) && len(v) == 0 && kept == "" {
				return // a header cut short: a new log, begun afresh
			}
			if err != nil || !bytes.Equal(old, v) {
				t.Fatalf("upgraded to %d letters; the old log holds %d (%v)", len(v), len(old), err)
			}
			if b, err := os.ReadFile(kept); err != nil || !bytes.Equal(b, edited[:oldGood]) {
				t.Fatalf("the original kept as %q is not the old log less its torn tail (%v)", kept, err)
			}
			return
		}
		if kept != "" {
			t.Fatalf("a v3 log was upgraded (%q): read as another version", kept)
		}
		j, ok := prefixOf(v, recs)
		if !ok {
			t.Fatalf("recovered %d letters that are no prefix of the answered letters", len(v))
		}
		for i := j; i < len(recs); i++ {
			r := recs[i]
			if r.end <= len(edited) && bytes.Equal(edited[r.off:r.end], orig[r.off:r.end]) {
				t.Fatalf("recovered %d of %d records, but record %d is intact at %d", j, len(recs), i, r.off)
			}
		}
		if j < len(recs) && len(edited) > recs[j].off && !tornLooking(edited, recs[j]) {
			t.Fatalf("recovered %d of %d records; record %d at %d was dropped with no sign of a torn write", j, len(recs), j, recs[j].off)
		}
	})
}

// fuzzBase is where the fuzz target writes its logs: a RAM disk if there
// is one (OpenFile syncs, and 100,000 inputs must run in seconds). Each
// process (the fuzzing workers are processes) has a directory of its own.
func fuzzBase() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "tcplab-fuzz-probe-"); err == nil {
			os.Remove(d)
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// fuzzRecord is one record of the original log: its place and letters.
type fuzzRecord struct {
	off, end int
	letters  []byte
}

// fuzzLog builds a log of format version from seed: 1 to 9 records of 1
// to 1,500 letters (any bytes, NULs included), each written as the store
// would write it.
func fuzzLog(seed uint64, version int) ([]byte, []fuzzRecord) {
	rng := rand.New(rand.NewPCG(seed, 0x7463706c6162))
	line, h := datalog.HeaderFor(version, uint32(seed)|1)
	b := bytes.Clone(line)
	var recs []fuzzRecord
	for range 1 + rng.IntN(9) {
		p := make([]byte, 1+rng.IntN(1500))
		for i := range p {
			if rng.IntN(4) > 0 {
				p[i] = byte(rng.Uint32())
			}
		}
		off := len(b)
		b = h.AppendRecords(b, int64(off), p)
		recs = append(recs, fuzzRecord{off, len(b), p})
	}
	return b, recs
}

// The edits, each 7 bytes: kind, then three 16-bit numbers a, b, c. A
// number that is a place is a byte offset (modulo the file's length plus
// one), or, with its top bit set, the start of a record of the original
// log (the rest of the number picks which), so that whole records are
// duplicated, deleted and moved often, not once in millions of inputs.
const (
	opFlip      = iota // flip bit c%8 of byte a
	opTruncate         // cut the file at a
	opDuplicate        // insert a copy of [a, b) at c
	opDelete           // delete [a, b)
	opMove             // move [a, b) to c (in the file without it)
	opZero             // zero [a, b)
	opAppend           // append b%600 bytes: zeros if c is even, else a pattern from a
	opSet              // set byte a to c%256
	numOps
)

func applyEdits(orig []byte, recs []fuzzRecord, ops []byte) []byte {
	e := bytes.Clone(orig)
	bounds := []int{0}
	for _, r := range recs {
		bounds = append(bounds, r.off)
	}
	bounds = append(bounds, len(orig))
	for n := 0; len(ops) >= 7 && n < 4; n++ {
		kind := int(ops[0]) % numOps
		a := int(binary.BigEndian.Uint16(ops[1:]))
		b := int(binary.BigEndian.Uint16(ops[3:]))
		c := int(binary.BigEndian.Uint16(ops[5:]))
		ops = ops[7:]
		place := func(x int) int {
			if x&0x8000 != 0 {
				return min(bounds[(x&0x7fff)%len(bounds)], len(e))
			}
			return x % (len(e) + 1)
		}
		lo, hi := place(a), place(b)
		if lo > hi {
			lo, hi = hi, lo
		}
		switch kind {
		case opFlip:
			if len(e) > 0 {
				e[a%len(e)] ^= 1 << (c % 8)
			}
		case opTruncate:
			e = e[:place(a)]
		case opDuplicate:
			at := place(c)
			piece := bytes.Clone(e[lo:hi])
			e = append(e[:at:at], append(piece, e[at:]...)...)
		case opDelete:
			e = append(e[:lo:lo], e[hi:]...)
		case opMove:
			piece := bytes.Clone(e[lo:hi])
			e = append(e[:lo:lo], e[hi:]...)
			at := place(c)
			e = append(e[:at:at], append(piece, e[at:]...)...)
		case opZero:
			clear(e[lo:hi])
		case opAppend:
			extra := make([]byte, b%600)
			if c%2 == 1 {
				for i := range extra {
					extra[i] = byte(a + i*7)
				}
			}
			e = append(e, extra...)
		case opSet:
			if len(e) > 0 {
				e[a%len(e)] = byte(c)
			}
		}
	}
	return e
}

// prefixOf reports whether v is the letters of recs[:j], and j.
func prefixOf(v []byte, recs []fuzzRecord) (int, bool) {
	j := 0
	for j < len(recs) && len(v) >= len(recs[j].letters) && bytes.Equal(v[:len(recs[j].letters)], recs[j].letters) {
		v = v[len(recs[j].letters):]
		j++
	}
	return j, len(v) == 0
}

// tornLooking reports whether what edited holds from r's place looks like
// r's write torn by a crash (see FuzzOpenFileEdits).
func tornLooking(edited []byte, r fuzzRecord) bool {
	hl := datalog.RecordHeader
	rest := edited[r.off:]
	switch {
	case len(edited) < r.end:
		return true
	case len(edited) == r.end && datalog.ZeroSector(edited[r.off+hl:r.end], int64(r.off+hl)):
		return true
	case len(rest) <= hl+datalog.MaxRecord && bytes.Count(rest, []byte{0}) == len(rest):
		return true
	}
	return false
}
