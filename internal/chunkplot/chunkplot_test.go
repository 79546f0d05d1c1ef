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
