package store_test

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// The check at stop reads the log back with a bounded buffer, comparing
// it with v as it goes, rather than building a second v: its memory does
// not grow with the log. (Before: Close decoded the whole log into a new
// v, allocating at least as much as v, up to --max-value, 256 MiB, at
// every stop.) What it catches is TestFileEditedWhileHeldIsToldAtClose's.
func TestFileStopCheckMemoryIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.log")
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const size = 32 << 20
	chunk := bytes.Repeat([]byte("abcdefgh"), 1<<17) // 1 MiB
	for range size / len(chunk) {
		if _, err := s.Append(context.Background(), chunk); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	const bound = 4 << 20
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("Close allocated %.2f MiB for a v of %d MiB", float64(got)/(1<<20), size>>20)
	if got > bound {
		t.Errorf("Close of a store whose v is %d MiB allocated %.1f MiB, want at most %d MiB", size>>20, float64(got)/(1<<20), bound>>20)
	}
}
