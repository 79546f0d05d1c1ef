package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/datalog"
	"github.com/tcplab/tcplab/store"
)

// logOf writes a log of the appends ps, one record each (every append is
// waited for, so each is a write of its own), and returns its path, bytes
// and the offset of each record, with the end of the file last.
func logOf(t *testing.T, ps ...string) (path string, file []byte, offsets []int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "v.log")
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if _, err := s.Append(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	file, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := datalog.HeaderLen(file)
	for _, p := range ps {
		offsets = append(offsets, off)
		off += datalog.RecordHeader + len(p)
	}
	if off != len(file) {
		t.Fatalf("log of %d bytes, records end at %d", len(file), off)
	}
	return path, file, append(offsets, off)
}

// refused opens the log at path holding file, and fails unless OpenFile
// refuses it and leaves it byte for byte as it was; it returns the refusal.
func refused(t *testing.T, path string, file []byte) error {
	t.Helper()
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenFile(path, store.FileOptions{})
	if err == nil {
		v, _ := s.Value(context.Background())
		s.Close()
		t.Fatalf("OpenFile accepted the edited log: v is %d bytes, %.60q...", len(v), v)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, file) {
		t.Fatalf("OpenFile changed the log it refused (%d bytes, now %d)", len(file), len(now))
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("refusal is more than one line: %q", err)
	}
	return err
}

// Records know their place: a whole record duplicated, two swapped, one
// deleted, or the body of the log appended again (cat v.log >> v.log
// less its header) is refused with the file unchanged, and --repair finds
// something to repair. (Before: each started cleanly and served a v that
// was never answered, "pay alice 1100 then bob 5" from "pay alice 100
// then bob 5", and RepairLog said there was nothing to repair.)
func TestFileRecordsKnowTheirPlace(t *testing.T) {
	ps := []string{"pay alice 1", "1", "00 then", " bob 5", "0"}
	_, file, off := logOf(t, ps...)
	head := off[0]
	rec := func(i int) []byte { return file[off[i]:off[i+1]] }
	join := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	cases := map[string][]byte{
		// "pay alice 11" + "1" again: "pay alice 1100 then bob 5" from the same letters
		"a record duplicated":            join(file[:off[2]], rec(1), file[off[2]:]),
		"two records swapped":            join(file[:off[1]], rec(2), rec(1), file[off[3]:]),
		"a record deleted":               join(file[:off[1]], file[off[2]:]),
		"the last deleted":               join(file[:off[4]]),
		"the body appended again":        join(file, file[head:]),
		"the last record appended again": join(file, rec(4)),
		"the log appended to itself":     join(file, file),
	}
	for name, edited := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "v.log")
			if name == "the last deleted" {
				// A log cut at a record boundary is a log that was
				// written that far: nothing in it can tell.
				os.WriteFile(path, edited, 0o644)
				s, err := store.OpenFile(path, store.FileOptions{})
				if err != nil {
					t.Fatal(err)
				}
				v, _ := s.Value(context.Background())
				s.Close()
				if want := strings.Join(ps[:4], ""); string(v) != want {
					t.Fatalf("v %q, want %q", v, want)
				}
				return
			}
			refused(t, path, edited)
			rep, err := store.RepairLog(path)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Copy == "" || len(rep.Dropped) == 0 {
				t.Fatalf("RepairLog found nothing to repair in a log with %s", name)
			}
		})
	}
}

// Damage confined to the last records is damage, not a torn tail: one bit
// flipped in the last complete record, or its checksum, or zeros from the
// middle of a record that is not the last to the end of the file, is
// refused with the file unchanged. (Before: the 4,000 letters of the last
// record were cut with a WARN saying they were never answered, and zeroing
// the last 4 KiB lost the 274 letters of the records in it.)
func TestFileDamagedLastRecordsAreRefused(t *testing.T) {
	ps := []string{"first", strings.Repeat("0123456789", 400)}
	for i := range 40 {
		ps = append(ps, strings.Repeat(string(rune('a'+i%26)), 50+i))
	}
	ps = append(ps, strings.Repeat("last letters ", 310)) // 4,030 letters
	path, file, off := logOf(t, ps...)
	last := len(ps) - 1
	flip := func(at int) []byte {
		d := bytes.Clone(file)
		d[at] ^= 0x10
		return d
	}
	zeroFrom := func(at int) []byte {
		d := bytes.Clone(file)
		clear(d[at:])
		return d
	}
	cases := map[string][]byte{
		"a letter of the last record":       flip(off[last] + datalog.RecordHeader + 2000),
		"the first letter of the last":      flip(off[last] + datalog.RecordHeader),
		"the last byte of the file":         flip(len(file) - 1),
		"the checksum of the last record":   flip(off[last] + 5),
		"zeros over the last 4 KiB":         zeroFrom(len(file) - 4096),
		"zeros from mid-record to the end":  zeroFrom(off[last-3] + 20),
		"zeros from the second last's data": zeroFrom(off[last-1] + datalog.RecordHeader + 1),
	}
	for name, edited := range cases {
		t.Run(name, func(t *testing.T) {
			refused(t, path, edited)
		})
	}
}

// A header edited to read as another format version is refused, never
// read under that version's rules. (Before: two bytes that made the
// header read as the first format's cut every record as a torn tail: the
// file was cut to its header and every answered letter was gone.)
func TestFileHeaderOfAnotherVersionRefused(t *testing.T) {
	path, file, _ := logOf(t, "hello", " world")
	version := len("tcplab-strsvr-log v")
	for _, as := range []string{"1\n", "2 ", "3 ", "4 ", "0 "} {
		d := bytes.Clone(file)
		if string(d[version:version+2]) == as {
			continue // the log's own version
		}
		copy(d[version:], as)
		t.Run("v"+as[:1], func(t *testing.T) {
			refused(t, path, d)
		})
	}
}
