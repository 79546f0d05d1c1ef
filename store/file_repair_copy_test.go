package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// spyCtx is a context that never ends and calls look each time its Err
// is asked: RepairLogContext asks between the chunks it writes.
type spyCtx struct {
	context.Context
	look func()
}

func (c spyCtx) Err() error { c.look(); return nil }

// The copy --repair keeps of the original is never, at any moment, a
// part of it under the name of a whole copy: a SIGKILL or a power cut
// while it is written would leave a file named path.damaged-TIME that
// passes for the original and is not. (Before: the copy was written in
// place, chunk by chunk, under its final name: between two chunks of a
// 9 MB log, path.damaged-TIME held 4 MiB of it.)
func TestRepairCopyNeverPartialUnderItsName(t *testing.T) {
	ps := make([]string, 150)
	for i := range ps {
		ps[i] = strings.Repeat(string(rune('a'+i%26)), 60000)
	}
	path, file, off := logOf(t, ps...)
	damaged := bytes.Clone(file)
	damaged[off[75]+20] ^= 0x40
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	looks, partial := 0, 0
	ctx := spyCtx{context.Background(), func() {
		looks++
		copies, _ := filepath.Glob(path + ".damaged-*")
		for _, c := range copies {
			if b, err := os.ReadFile(c); err == nil && !bytes.Equal(b, damaged) {
				partial++
				t.Logf("%s holds %d of the original's %d bytes", filepath.Base(c), len(b), len(damaged))
			}
		}
	}}
	rep, err := store.RepairLogContext(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if partial != 0 {
		t.Errorf("at %d of %d looks, a copy named as whole was partial", partial, looks)
	}
	if b, err := os.ReadFile(rep.Copy); err != nil || !bytes.Equal(b, damaged) {
		t.Errorf("the copy %s is not the original (%v)", rep.Copy, err)
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) != 1 {
		t.Errorf("beside the log: %v, want the copy alone", left)
	}
}

// A part of a copy left by a run that was killed while writing it does
// not stop the next run, and is gone after it.
func TestRepairAfterAKilledCopy(t *testing.T) {
	path, file, off := logOf(t, "pay alice 100", " then bob 5", " ok")
	damaged := bytes.Clone(file)
	damaged[off[1]+14] ^= 0x40
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".repair-copy-tmp", damaged[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := store.RepairLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(rep.Copy); !bytes.Equal(b, damaged) {
		t.Error("the copy is not the original")
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) != 1 {
		t.Errorf("beside the log: %v, want the copy alone", left)
	}
}
