package store_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// --repair names the letters of every record it drops, also of whole
// records that are intact but not at their place (a record deleted before
// them, one duplicated or moved: the edits issue 17 named), and says
// where each was written. (Before: the records after such an edit were
// dropped as "bytes that are not a record; no letters can be told in
// them", and the report counted 0 letters dropped, though " ok" and
// " done" were answered letters, intact in the file.)
func TestRepairLogNamesMovedRecords(t *testing.T) {
	ps := []string{"pay alice 100", " then bob 5", " ok", " done"}
	for _, c := range []struct {
		name string
		edit func(file []byte, off []int) []byte
		want []string // letters of the records dropped, in order
		at   []int    // where each was written (index into off)
	}{
		{"deleted", func(f []byte, off []int) []byte { return slices.Concat(f[:off[1]], f[off[2]:]) }, []string{" ok", " done"}, []int{2, 3}},
		{"duplicated", func(f []byte, off []int) []byte { return slices.Concat(f[:off[2]], f[off[1]:off[2]], f[off[2]:]) }, []string{" then bob 5", " ok", " done"}, []int{1, 2, 3}},
		{"swapped", func(f []byte, off []int) []byte {
			return slices.Concat(f[:off[1]], f[off[2]:off[3]], f[off[1]:off[2]], f[off[3]:])
		}, []string{" ok", " then bob 5"}, []int{2, 1}}, // " done" is at its place again
	} {
		t.Run(c.name, func(t *testing.T) {
			path, file, off := logOf(t, ps...)
			os.WriteFile(path, c.edit(file, off), 0o644)
			rep, err := store.RepairLog(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var at []int
			for _, d := range rep.Dropped {
				if !d.Known {
					t.Errorf("dropped %d bytes at %d with no letters told: %s", d.Bytes, d.Offset, d.Why)
					continue
				}
				got = append(got, string(d.Letters))
				at = append(at, slices.Index(off, int(d.WrittenAt)))
				if !strings.Contains(d.Why, "written at byte") {
					t.Errorf("dropped record at %d: %q does not say where it was written", d.Offset, d.Why)
				}
			}
			if !slices.Equal(got, c.want) || !slices.Equal(at, c.at) {
				t.Errorf("dropped the letters %q written at records %v; want %q at %v", got, at, c.want, c.at)
			}
		})
	}
}

// A header copied from another log makes every record fail: RepairLog
// must not claim that they were written somewhere in this log (H solves
// to some offset under any key; the offsets of a foreign key are random).
func TestRepairLogForeignHeaderClaimsNoPlace(t *testing.T) {
	path, file, off := logOf(t, "pay alice 100", " then bob 5")
	_, other, _ := logOf(t, "x")
	os.WriteFile(path, slices.Concat(other[:off[0]], file[off[0]:]), 0o644)
	rep, err := store.RepairLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Dropped {
		if d.WrittenAt != 0 {
			t.Errorf("dropped %d bytes at %d: %s", d.Bytes, d.Offset, d.Why)
		}
	}
	if rep.Letters != 0 {
		t.Errorf("kept %d letters under another log's header", rep.Letters)
	}
}
