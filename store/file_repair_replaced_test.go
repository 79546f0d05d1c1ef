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

// A log replaced at its path while --repair works on it (a backup put
// back, a new log moved into place) is not overwritten by the repair of
// the file it had read: the rename would destroy the new log, whose
// letters are in no copy. (Before: the repair renamed its output over
// the new log at every stage and reported success.)
func TestRepairLogLeavesAReplacedLogAlone(t *testing.T) {
	for _, stage := range []string{"read", "copied", "written"} {
		t.Run(stage, func(t *testing.T) {
			path, file, offsets, _ := writeLog(t, 100)
			damaged := bytes.Clone(file)
			damaged[offsets[50]+9] ^= 0x40
			if err := os.WriteFile(path, damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			_, other, _, _ := writeLog(t, 7)
			defer store.SetRepairHook(func(s string) {
				if s != stage {
					return
				}
				// mv new.log v.log: another file at the path.
				tmp := path + ".new"
				if err := os.WriteFile(tmp, other, 0o644); err != nil {
					t.Error(err)
				}
				if err := os.Rename(tmp, path); err != nil {
					t.Error(err)
				}
			})()
			rep, err := store.RepairLogContext(context.Background(), path)
			now, _ := os.ReadFile(path)
			if !bytes.Equal(now, other) {
				t.Errorf("the log put in place during the repair was overwritten (err %v, report %+v)", err, rep)
			}
			if err == nil || !strings.Contains(err.Error(), "nothing changed") {
				t.Errorf("err %v; want one that says the log was replaced and nothing changed", err)
			}
			if left, _ := filepath.Glob(path + ".*"); len(left) != 0 {
				t.Errorf("left beside the log: %v", left)
			}
		})
	}
}

// Bytes appended to the log during the repair by a process that takes no
// lock are not lost to the rename either. (Before: renamed over.)
func TestRepairLogLeavesAnAppendedLogAlone(t *testing.T) {
	path, file, offsets, _ := writeLog(t, 100)
	damaged := bytes.Clone(file)
	damaged[offsets[50]+9] ^= 0x40
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	defer store.SetRepairHook(func(s string) {
		if s != "written" {
			return
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.WriteString("more")
		f.Close()
	})()
	_, err := store.RepairLogContext(context.Background(), path)
	now, _ := os.ReadFile(path)
	if want := append(bytes.Clone(damaged), "more"...); !bytes.Equal(now, want) {
		t.Errorf("the log written to during the repair was replaced (err %v)", err)
	}
	if err == nil {
		t.Error("no error")
	}
}
