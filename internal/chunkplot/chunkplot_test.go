package chunkplot

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/stream"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestCheckPath(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		path string
		ok   bool
	}{
		{filepath.Join(dir, "c.png"), true},
		{filepath.Join(dir, "c.SVG"), true},
		{filepath.Join(dir, "c.txt"), false},
		{filepath.Join(dir, "c"), false},
		{filepath.Join(dir, "missing", "c.png"), false},
	}
	for _, tc := range cases {
		if err := CheckPath(tc.path); (err == nil) != tc.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

func TestWriteDrawsBothKinds(t *testing.T) {
	var s stream.ChunkStats
	for i, n := range []int{100, 65536, 300, 65536} {
		s.Add(n, time.Unix(int64(i), 0))
	}
	for _, name := range []string{"c.png", "c.svg"} {
		path := filepath.Join(t.TempDir(), name)
		if err := Write(path, &s); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// A plot that cannot be drawn whole is not left behind (a full disk used
// to leave a cut-off PNG), and a symlink at the name is replaced, not
// written through.
func TestWriteWholeOrNothing(t *testing.T) {
	var s stream.ChunkStats
	for i := range 2000 {
		s.Add(1+i*37%65536, time.Unix(int64(i), 0))
	}
	full := testkit.SmallDisk(t, 16<<10)
	if err := Write(filepath.Join(full, "chunks.png"), &s); err == nil {
		t.Fatal("the plot fitted on a 16 kB disk")
	}
	if es, _ := os.ReadDir(full); len(es) != 0 {
		t.Errorf("the full disk holds %s", es[0].Name())
	}
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "chunks.png")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, &s); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Errorf("Write drew through a symlink: its target is now %d bytes", len(got))
	}
}
