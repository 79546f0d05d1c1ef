//go:build unix

package store_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// A data file that is a FIFO or a device is refused with one line that says
// so, by strsvr and by --repair, before it is opened. (Before: --repair on a
// FIFO blocked in open(2) for good, deaf to SIGTERM, until a writer came;
// strsvr said "write fifo: illegal seek", and on /dev/null "sync
// /dev/null: invalid argument".)
func TestDataFileThatIsNoRegularFileRefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "v.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	// A writer that lets a blocked open(2) of the FIFO go on, so that
	// the code before the fix fails this test instead of hanging it;
	// released at the end if RepairLog never opened the FIFO.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
	}()
	defer func() {
		if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			<-wrote
			r.Close()
		}
	}()
	for name, path := range map[string]string{"a FIFO": fifo, "a device": os.DevNull} {
		if _, err := store.RepairLog(path); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("RepairLog on %s: %v; want a refusal saying it is not a regular file", name, err)
		}
		if s, err := store.OpenFile(path, store.FileOptions{}); err == nil {
			s.Close()
			t.Errorf("OpenFile on %s worked", name)
		} else if !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("OpenFile on %s: %v; want a refusal saying it is not a regular file", name, err)
		}
	}
}
