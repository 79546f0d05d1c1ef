package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/datalog"
	"github.com/tcplab/tcplab/store"
)

// writeLog makes a log of n appends "<i>" and returns its path, its bytes,
// the offset of each record and v.
func writeLog(t *testing.T, n int) (path string, file []byte, offsets []int, v []byte) {
	t.Helper()
	return writeLogBytes(t, n)
}

func writeLogBytes(t testing.TB, n int) (path string, file []byte, offsets []int, v []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "v.log")
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := fmt.Appendf(nil, "<%d>", i)
		v = append(v, p...)
		if _, err := s.Append(context.Background(), p); err != nil {
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
	for i := range n {
		offsets = append(offsets, off)
		off += datalog.RecordHeader + len(fmt.Sprintf("<%d>", i))
	}
	return path, file, offsets, v
}

// A damaged record with valid records after it is corruption, not a torn
// tail: OpenFile refuses, names the file, the offset and the bytes that
// follow, and leaves the file as it was. (Before: the log was cut at the
// damage, in place, and every acknowledged letter after it was gone.)
func TestFileRefusesDamageBeforeValidRecords(t *testing.T) {
	cases := []struct {
		name   string
		record int // which record to damage
		at     int // byte within the record: 0-3 length, 4-7 checksum, 8+ data
	}{
		{"data byte mid-log", 500, 9},
		{"data byte of the first record", 0, 8},
		{"checksum mid-log", 700, 5},
		{"length mid-log", 300, 3},
		{"second to last record", 998, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, file, offsets, _ := writeLog(t, 1000)
			damaged := bytes.Clone(file)
			damaged[offsets[c.record]+c.at] ^= 0x40
			os.WriteFile(path, damaged, 0o644)
			s, err := store.OpenFile(path, store.FileOptions{})
			if err == nil {
				s.Close()
				t.Fatal("OpenFile accepted a log damaged before valid records")
			}
			var ce *store.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *store.CorruptError", err)
			}
			if ce.Offset != int64(offsets[c.record]) || ce.After != int64(len(file)-offsets[c.record]) || ce.Next != int64(offsets[c.record+1]) {
				t.Errorf("corruption reported at %d with %d bytes after, want %d and %d", ce.Offset, ce.After, offsets[c.record], len(file)-offsets[c.record])
			}
			msg := err.Error()
			for _, want := range []string{path, fmt.Sprint(offsets[c.record]), fmt.Sprint(len(file) - offsets[c.record])} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %s", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message is more than one line: %q", msg)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, damaged) {
				t.Fatal("OpenFile changed a corrupt log")
			}
		})
	}
}

// A torn tail is still cut, and Dropped says how many bytes went.
func TestFileTornTailDropped(t *testing.T) {
	path, file, offsets, v := writeLog(t, 10)
	torn := append(bytes.Clone(file), file[offsets[9]:offsets[9]+7]...) // a header, torn
	os.WriteFile(path, torn, 0o644)
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dropped() != 7 {
		t.Errorf("Dropped %d, want 7", s.Dropped())
	}
	if got, _ := s.Value(context.Background()); !bytes.Equal(got, v) {
		t.Errorf("recovered %q, want %q", got, v)
	}
}

// RepairLog keeps a copy of the original, drops only the damaged bytes,
// keeps every valid record after them, and reports what it dropped.
func TestRepairLog(t *testing.T) {
	path, file, offsets, v := writeLog(t, 1000)
	damaged := bytes.Clone(file)
	damaged[offsets[500]+9] ^= 0x40                                 // record 500: "<500>"
	damaged = append(damaged, file[offsets[999]:offsets[999]+5]...) // and a torn tail
	os.WriteFile(path, damaged, 0o644)

	rep, err := store.RepairLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if saved, err := os.ReadFile(rep.Copy); err != nil || !bytes.Equal(saved, damaged) {
		t.Fatalf("copy of the original %s: %v (equal %t)", rep.Copy, err, bytes.Equal(saved, damaged))
	}
	want := []store.Span{{Offset: int64(offsets[500]), Bytes: int64(offsets[501] - offsets[500])}, {Offset: int64(len(file)), Bytes: 5}}
	var got []store.Span
	for _, d := range rep.Dropped {
		got = append(got, d.Span)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dropped %v, want %v", got, want)
	}
	if d := rep.Dropped[0]; !d.Known || string(d.Letters) != "<500>" || d.Before != int64(len("<0>"))*10+int64(len("<10>"))*90+int64(len("<100>"))*400 {
		t.Errorf("dropped record: known %t, letters %q after %d letters; want \"<500>\" after those of <0> to <499>", d.Known, d.Letters, d.Before)
	}
	wantV := bytes.Replace(v, []byte("<500>"), nil, 1)
	before := bytes.Index(v, []byte("<500>"))
	if rep.Letters != int64(len(wantV)) || rep.LettersBeforeDamage != int64(before) || rep.Records != 999 {
		t.Errorf("report: %d letters in %d records kept, %d before the damage; want %d in 999, %d", rep.Letters, rep.Records, rep.LettersBeforeDamage, len(wantV), before)
	}
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatalf("repaired log refused: %v", err)
	}
	defer s.Close()
	if got, _ := s.Value(context.Background()); !bytes.Equal(got, wantV) {
		t.Fatalf("repaired v is %d bytes, want %d", len(got), len(wantV))
	}
	if s.Dropped() != 0 {
		t.Errorf("repaired log still has %d bytes to cut", s.Dropped())
	}
	if _, err := store.RepairLog(path); err == nil {
		t.Error("RepairLog of a log in use succeeded")
	}
}

// A log with nothing to repair is left alone, with no copy.
func TestRepairLogIntact(t *testing.T) {
	path, file, _, _ := writeLog(t, 10)
	rep, err := store.RepairLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Copy != "" || len(rep.Dropped) != 0 {
		t.Errorf("intact log: copy %q, dropped %v", rep.Copy, rep.Dropped)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, file) {
		t.Error("intact log changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files beside an intact log after repair", len(entries))
	}
}

// The repair of any log keeps exactly the valid records it reports, in a
// log that decodes whole, and accounts for every byte of the original.
func FuzzRepairLog(f *testing.F) {
	_, file, _, _ := writeLogBytes(f, 5)
	damaged := bytes.Clone(file)
	head := datalog.HeaderLen(file)
	damaged[head+9] ^= 1
	f.Add(damaged[head:])
	f.Add(append(bytes.Clone(file[head:]), 0, 0, 0, 1, 2))
	f.Add(file)
	f.Fuzz(func(t *testing.T, tail []byte) {
		orig := append(bytes.Clone(file[:head]), tail...)
		out, rep := store.RepairBytes(orig)
		v, good, err := datalog.Decode(bytes.NewReader(out))
		if err != nil || good != int64(len(out)) || int64(len(v)) != rep.Letters {
			t.Fatalf("repaired log: %v, good %d of %d, %d letters (report %d)", err, good, len(out), len(v), rep.Letters)
		}
		kept := int64(len(out) - head)
		for _, sp := range rep.Dropped {
			kept += sp.Bytes
		}
		if kept != int64(len(tail)) {
			t.Fatalf("kept and dropped %d bytes of %d", kept, len(tail))
		}
	})
}

// A log reached through a symbolic link is repaired where the link points
// (the link stays a link), and keeps its permissions.
func TestRepairLogThroughSymlinkKeepsMode(t *testing.T) {
	path, file, offsets, _ := writeLog(t, 20)
	damaged := bytes.Clone(file)
	damaged[offsets[3]+datalog.RecordHeader] ^= 1
	os.WriteFile(path, damaged, 0o600)
	os.Chmod(path, 0o600)
	link := filepath.Join(t.TempDir(), "link.log")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RepairLog(link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link is no longer a link: %v %v", fi.Mode(), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("repaired log mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if now, _ := os.ReadFile(path); bytes.Equal(now, damaged) {
		t.Fatal("the log the link points to was not repaired")
	}
}

// A client's letters are its own bytes, and they can look like a record:
// the length and CRC-32C of some data, then the data. When the record
// holding them is torn (a power cut during its write), that look-alike
// after the first bad byte must not pass for a valid record, or the torn
// tail becomes "damage before valid records" and strsvr refuses to start
// until someone runs --repair. Records' checksums are keyed by a random
// value in the log's header, which no client sees. (Before: OpenFile
// refused such a log with a CorruptError.)
func TestFileTornLetterLookingLikeRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.log")
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Append(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	fake := []byte("evil")
	letters := bytes.Repeat([]byte("x"), 20)
	letters = binary.BigEndian.AppendUint32(letters, uint32(len(fake)))
	letters = binary.BigEndian.AppendUint32(letters, crc32.Checksum(fake, crc32.MakeTable(crc32.Castagnoli)))
	letters = append(letters, fake...)
	letters = append(letters, bytes.Repeat([]byte("y"), 20)...)
	if _, err := s.Append(ctx, letters); err != nil {
		t.Fatal(err)
	}
	s.Close()
	file, _ := os.ReadFile(path)
	for _, cut := range []int{1, 10, 19} { // the look-alike is whole in each
		os.WriteFile(path, file[:len(file)-cut], 0o644)
		s, err := store.OpenFile(path, store.FileOptions{})
		if err != nil {
			t.Fatalf("torn by %d bytes: %v", cut, err)
		}
		got, _ := s.Value(ctx)
		s.Close()
		if string(got) != "before" {
			t.Fatalf("torn by %d bytes: recovered %q, want %q", cut, got, "before")
		}
	}
}

// Logs of the two older formats (testdata/v1.log, hand-made in the first
// format; testdata/v2.log, written by strsvr before records knew their
// place) are read, their torn tails cut by the same rules, and rewritten
// in the current format, the original kept beside them; and a header torn
// while the log was created is begun afresh.
func TestFileUpgradesOlderFormats(t *testing.T) {
	ctx := context.Background()
	want := "pay alice 100 then bob 5\x00\xff\n"
	for _, version := range []string{"v1", "v2"} {
		orig, err := os.ReadFile(filepath.Join("testdata", version+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cases := map[string]struct {
			file []byte
			want string
		}{
			"whole":          {orig, want},
			"torn last":      {orig[:len(orig)-2], strings.TrimSuffix(want, "\x00\xff\n")},
			"zeros appended": {append(bytes.Clone(orig), make([]byte, 600)...), want},
		}
		for name, c := range cases {
			t.Run(version+"/"+name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "v.log")
				os.WriteFile(path, c.file, 0o600)
				s, err := store.OpenFile(path, store.FileOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := s.Value(ctx)
				if string(got) != c.want {
					t.Fatalf("recovered %q, want %q", got, c.want)
				}
				kept := s.Upgraded()
				if b, err := os.ReadFile(kept); err != nil || !bytes.Equal(b, c.file[:len(b)]) || len(b) > len(c.file) {
					t.Fatalf("original kept as %q: %v (its bytes the original's: %t)", kept, err, bytes.Equal(b, c.file[:min(len(b), len(c.file))]))
				}
				if _, err := s.Append(ctx, []byte("Z")); err != nil {
					t.Fatal(err)
				}
				s.Close()
				b, _ := os.ReadFile(path)
				h, err := datalog.ParseHeader(b)
				if err != nil || h.Version != datalog.Version {
					t.Fatalf("after the upgrade the log is v%d (%v)", h.Version, err)
				}
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
					t.Errorf("upgraded log mode %v, want the original's 0600", fi.Mode().Perm())
				}
				if got := reopened(t, path); got != c.want+"Z" {
					t.Fatalf("after the upgrade and Z: %q", got)
				}
			})
		}
	}

	path := filepath.Join(t.TempDir(), "v.log")
	_, file, _, _ := writeLog(t, 1)
	for n := range datalog.HeaderLen(file) {
		os.WriteFile(path, file[:n], 0o644)
		s, err := store.OpenFile(path, store.FileOptions{})
		if err != nil {
			t.Fatalf("header torn at %d: %v", n, err)
		}
		s.Append(ctx, []byte("Y"))
		s.Close()
		b, _ := os.ReadFile(path)
		if v, _, err := datalog.Decode(bytes.NewReader(b)); err != nil || string(v) != "Y" {
			t.Fatalf("header torn at %d: then %q, %v", n, v, err)
		}
	}
}

// reopened opens the log at path as a restart would and returns v.
func reopened(t *testing.T, path string) string {
	t.Helper()
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, _ := s.Value(context.Background())
	return string(v)
}

// A log's header holds the checksum key: one flipped bit there must not
// pass for another key, under which every record fails and the whole log
// would be cut as a torn tail. OpenFile refuses such a log and leaves it
// alone, whatever the bit.
func TestFileDamagedHeaderRefused(t *testing.T) {
	path, file, _, _ := writeLog(t, 20)
	for i := range datalog.HeaderLen(file) {
		for bit := range 8 {
			d := bytes.Clone(file)
			d[i] ^= 1 << bit
			os.WriteFile(path, d, 0o644)
			s, err := store.OpenFile(path, store.FileOptions{})
			if err == nil {
				v, _ := s.Value(context.Background())
				s.Close()
				t.Fatalf("byte %d bit %d of the header flipped: opened, v %q", i, bit, v)
			}
			if want := "damaged header"; i >= len("tcplab-strsvr-log v3 ") && !strings.Contains(err.Error(), want) {
				t.Errorf("byte %d bit %d of the key flipped: %q does not say %q", i, bit, err, want)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, d) {
				t.Fatalf("byte %d bit %d of the header flipped: the file was changed", i, bit)
			}
		}
	}
}

// A path that is no file is named once in the error, not twice.
func TestRepairLogOfADirectoryNamesItOnce(t *testing.T) {
	dir := t.TempDir()
	_, err := store.RepairLog(dir)
	if err == nil || strings.Count(err.Error(), dir) != 1 {
		t.Fatalf("RepairLog(%s) = %v; want one line naming the path once", dir, err)
	}
}
