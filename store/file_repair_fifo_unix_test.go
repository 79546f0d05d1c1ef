//go:build unix

package store_test

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// A FIFO (or anything) left at the temporary file's path by a stopped or
// crashed run, or by someone else, does not hang the repair: the
// temporary file is made afresh. (A FIFO there blocked open(2) for good,
// deaf to SIGTERM.)
func TestRepairLogReplacesWhatIsAtItsTemporaryPath(t *testing.T) {
	path, file, offsets, _ := writeLog(t, 100)
	damaged := bytes.Clone(file)
	damaged[offsets[50]+9] ^= 0x40
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path+".repair-tmp", 0o644); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	rep, err := store.RepairLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(path); bytes.Equal(now, damaged) || rep.Copy == "" {
		t.Fatal("not repaired")
	}
	if _, err := os.Lstat(path + ".repair-tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary path is still there: %v", err)
	}
}
