package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tcplab/tcplab/store"
)

// Under FsyncInterval the store looks whether its path still names the log
// at most once every 10 ms: a letter written within that window after the
// log is removed is answered (the documented cost of --fsync interval), and
// the first write after it is refused. The clock is synctest's, so the
// window is exact.
func TestFileIntervalLooksEveryTenMs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "v.log")
		s, err := store.OpenFile(path, store.FileOptions{Fsync: store.FsyncInterval, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		if _, err := s.Append(ctx, []byte("a")); err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		if _, err := s.Append(ctx, []byte("b")); err != nil {
			t.Fatalf("append within 10ms of the last look: %v, want it answered", err)
		}
		time.Sleep(10 * time.Millisecond) // synctest's clock: the check's period passes at once
		if v, err := s.Append(ctx, []byte("c")); err == nil {
			t.Fatalf("append 10ms after the log was removed answered (%q)", v)
		} else if !strings.Contains(err.Error(), "removed") {
			t.Errorf("error %q does not say the file was removed", err)
		}
	})
}
