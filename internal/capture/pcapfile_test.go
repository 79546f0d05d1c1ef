package capture

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// A pcap that cannot be written whole is not left behind: on a full disk
// WritePcap used to leave an empty or cut-off file that looked like a
// capture. And a symlink planted at the name (sudo tcplab demo --out a
// directory another user made) is replaced, not written through: it used
// to overwrite the file it pointed at, as root.
func TestWritePcapWholeOrNothing(t *testing.T) {
	rec := &Record{Snaplen: 1514}
	for i := range 100 {
		rec.Frames = append(rec.Frames, Frame{At: time.Unix(1_700_000_000, int64(i)), Data: make([]byte, 1500), Length: 1500})
	}
	full := testkit.SmallDisk(t, 64<<10)
	if err := rec.WritePcap(filepath.Join(full, "loss.pcap")); err == nil {
		t.Fatal("a 150 kB pcap fitted on a 64 kB disk")
	}
	if es, _ := os.ReadDir(full); len(es) != 0 {
		t.Errorf("the full disk holds %s", es[0].Name())
	}

	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "loss.pcap")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := rec.WritePcap(path); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Errorf("WritePcap wrote through a symlink: its target is now %d bytes", len(got))
	}
	if back, err := ReadPcap(path); err != nil || len(back.Frames) != len(rec.Frames) {
		t.Errorf("read back %v", err)
	}
}
