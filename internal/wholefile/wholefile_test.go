package wholefile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func write(data []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(data); return err }
}

// only lists the names in dir.
func only(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteMakesTheFileWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.pcap")
	for _, data := range [][]byte{[]byte("first"), []byte("second, longer")} {
		if err := Write(path, write(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if names := only(t, dir); len(names) != 1 {
		t.Errorf("the directory holds %v", names)
	}
}

// A write that fails leaves nothing new, and the file as it was.
func TestWriteLeavesNothingOnAFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.png")
	if err := Write(path, write([]byte("old"))); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error { w.Write([]byte("half")); return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("the file holds %q after a failed write, want \"old\"", got)
	}
	if names := only(t, dir); len(names) != 1 {
		t.Errorf("the directory holds %v", names)
	}
}

// On a full disk: the error is ENOSPC naming the file, and no cut-off
// file is left to look whole.
func TestWriteOnAFullDisk(t *testing.T) {
	dir := testkit.SmallDisk(t, 64<<10)
	path := filepath.Join(dir, "big.pcap")
	err := Write(path, write(make([]byte, 1<<20)))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want ENOSPC naming %s", err, path)
	}
	if names := only(t, dir); len(names) != 0 {
		t.Errorf("a full disk left %v", names)
	}
}

// A symlink at the name is replaced, not written through.
func TestWriteDoesNotFollowASymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "loss.pcap")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, write([]byte("capture"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Errorf("the symlink's target now holds %q", got)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s is %v, %v; want a regular file", path, fi.Mode(), err)
	}
}

func TestWriteIntoNoDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "a.pcap")
	if err := Write(path, write(nil)); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want not-exist naming %s", err, path)
	}
}
