package store_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// Whatever is done to the log while a store holds it, Close either says v
// is not kept, or a restart recovers exactly the v it served. Seeded
// edits of the open file: cut it at a record boundary (the store's next
// write then lands past a hole), change a byte in place (same length),
// append a copy of a record. (Before: Close looked only at the path and
// the size, so a log cut and then written past, or edited in place,
// closed cleanly, the server exited 0, and the restart refused the log as
// damaged.)
func TestFileEditedWhileHeldIsToldAtClose(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 17))
		path := filepath.Join(t.TempDir(), "v.log")
		s, err := store.OpenFile(path, store.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var ends []int64 // the file's size after each append: record boundaries
		appendSome := func() {
			for range 1 + r.IntN(4) {
				p := bytes.Repeat([]byte{byte('a' + r.IntN(26))}, 1+r.IntN(40))
				if _, err := s.Append(ctx, p); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				fi, _ := os.Stat(path)
				ends = append(ends, fi.Size())
			}
		}
		appendSome()
		edit := r.IntN(3)
		w, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := w.Stat()
		switch edit {
		case 0: // cut at a record boundary before the end
			cuts := append([]int64{39}, ends[:len(ends)-1]...)
			w.Truncate(cuts[r.IntN(len(cuts))])
		case 1: // change one byte in place
			at := r.Int64N(fi.Size())
			b := make([]byte, 1)
			w.ReadAt(b, at)
			b[0] ^= byte(1 + r.IntN(255))
			w.WriteAt(b, at)
		case 2: // the file appended to itself, then cut back to its size
			all, _ := os.ReadFile(path)
			w.WriteAt(all[39:], fi.Size())
			w.Truncate(fi.Size())
		}
		w.Close()
		if r.IntN(2) == 0 {
			appendSome() // the store writes on past the edit
		}
		want, _ := s.Value(ctx)
		cerr := s.Close()
		if cerr != nil {
			continue // told: v is not kept
		}
		s2, err := store.OpenFile(path, store.FileOptions{})
		if err != nil {
			t.Fatalf("seed %d (edit %d): Close said v was kept, and the restart refuses the log: %v", seed, edit, err)
		}
		got, _ := s2.Value(ctx)
		s2.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d (edit %d): Close said v (%d bytes) was kept, and the restart recovers %d bytes", seed, edit, len(want), len(got))
		}
	}
}
