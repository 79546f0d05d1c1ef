package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/store"
)

// A full disk refuses the append that does not fit (never answering it),
// says so once at ERROR, and the store takes appends again by itself as
// soon as space is freed; a restart recovers exactly the answered appends.
// (Before: after the first ENOSPC every append was refused for good.)
func TestFileDiskFullRecovers(t *testing.T) {
	for _, policy := range []store.Fsync{store.FsyncAlways, store.FsyncInterval} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			dir := testkit.SmallDisk(t, 256<<10)
			path := filepath.Join(dir, "v.log")
			var logBuf testkit.SafeBuffer
			s, err := store.OpenFile(path, store.FileOptions{Fsync: policy, Logger: testLogger(&logBuf)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			var answered []byte
			if v, err := s.Append(ctx, []byte("before")); err != nil {
				t.Fatal(err)
			} else {
				answered = v
			}
			filler := testkit.FillDisk(t, dir)
			big := bytes.Repeat([]byte("x"), 64<<10)
			var failed error
			for range 20 {
				v, err := s.Append(ctx, big)
				if err != nil {
					failed = err
					break
				}
				answered = v
			}
			if !errors.Is(failed, syscall.ENOSPC) {
				t.Fatalf("append on a full disk: %v, want ENOSPC", failed)
			}
			if _, err := s.Append(ctx, big); err == nil {
				t.Fatal("a second append succeeded on a full disk")
			}
			if v, _ := s.Value(ctx); !bytes.HasPrefix(v, answered) {
				t.Fatal("v lost answered bytes")
			}
			if got := logBuf.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "no space left on device") {
				t.Errorf("log on a full disk, want an ERROR with the cause:\n%s", got)
			}
			os.Remove(filler)
			v, err := s.Append(ctx, []byte("after"))
			if err != nil {
				t.Fatalf("append after space was freed: %v", err)
			}
			if !strings.Contains(logBuf.String(), "accepts writes again") {
				t.Errorf("no log line for the recovery:\n%s", logBuf.String())
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := store.OpenFile(path, store.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			got, _ := s2.Value(ctx)
			if !bytes.Equal(got, v) {
				t.Fatalf("restart recovered %d bytes, want the %d answered last", len(got), len(v))
			}
			if s2.Dropped() != 0 {
				t.Errorf("restart cut %d bytes: the failed writes were left in the log", s2.Dropped())
			}
		})
	}
}

// RepairLog on a full disk fails with "nothing changed", and leaves
// nothing behind: no partial copy of the original (which an operator
// could take for a whole one), and no whole copy either when the
// repaired log could not be written, so that retrying does not fill the
// disk with copies. (Before: each failed try left a copy.)
func TestRepairLogDiskFullLeavesNothing(t *testing.T) {
	dir := testkit.SmallDisk(t, 64<<10)
	_, file, offsets, _ := writeLog(t, 1500) // about 26 KiB
	damaged := bytes.Clone(file)
	damaged[offsets[900]+9] ^= 1
	path := filepath.Join(dir, "v.log")
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	filler := testkit.FillDisk(t, dir)
	// The copy does not fit; then it fits but the repaired log does not.
	for _, free := range []int64{0, int64(len(damaged)) + 4096} {
		if free > 0 {
			os.Truncate(filler, 0)
			f, _ := os.OpenFile(filler, os.O_WRONLY, 0)
			var fs syscall.Statfs_t
			syscall.Statfs(dir, &fs)
			avail := int64(fs.Bavail) * fs.Bsize
			f.Write(make([]byte, avail-free))
			f.Close()
		}
		if _, err := store.RepairLog(path); err == nil || !strings.Contains(err.Error(), "nothing changed") {
			t.Fatalf("free %d: RepairLog on a full disk: %v", free, err)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, damaged) {
			t.Fatalf("free %d: the log was changed", free)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) != 2 {
			t.Fatalf("free %d: files left beside the log: %v", free, names)
		}
	}
}
