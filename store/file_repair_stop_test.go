package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// A repair stopped (its context ended: strsvr --repair's SIGINT or
// SIGTERM) at any stage before it replaces the log changes nothing and
// leaves nothing beside it: no copy, no temporary file. Stopped after, it
// is complete. The stages are the points where RepairLogContext looks at
// its context; the hook stops it there, without a clock.
func TestRepairLogStopsAtEveryStage(t *testing.T) {
	for _, stage := range []string{"begun", "read", "copied", "written", "replaced"} {
		t.Run(stage, func(t *testing.T) {
			path, file, offsets, _ := writeLog(t, 1000)
			damaged := bytes.Clone(file)
			damaged[offsets[500]+9] ^= 0x40
			if err := os.WriteFile(path, damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			seen := false
			defer store.SetRepairHook(func(s string) {
				if s == stage {
					seen = true
					cancel()
				}
			})()
			rep, err := store.RepairLogContext(ctx, path)
			if !seen {
				t.Fatalf("the repair never reached stage %q", stage)
			}
			left, _ := filepath.Glob(path + ".*")
			now, _ := os.ReadFile(path)
			if stage == "replaced" {
				if err != nil || rep.Copy == "" || bytes.Equal(now, damaged) || len(left) != 1 {
					t.Fatalf("stopped after the log was replaced: %v, copy %q, log changed %t, beside it %v; want a complete repair", err, rep.Copy, !bytes.Equal(now, damaged), left)
				}
				return
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("stopped at %q: err %v, want one that is context.Canceled", stage, err)
			}
			if !bytes.Equal(now, damaged) {
				t.Error("the log changed")
			}
			if len(left) != 0 {
				t.Errorf("left beside the log: %v", left)
			}
		})
	}
}
