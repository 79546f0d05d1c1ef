package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/store"
)

// Once the log is removed or replaced under the store, no append is
// answered any more, and the reason is logged at ERROR. (Before: letters
// went on being answered into the unlinked file, and a second server could
// start on the path.)
func TestFileRemovedOrReplaced(t *testing.T) {
	for _, how := range []string{"removed", "replaced"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "v.log")
			var logBuf testkit.SafeBuffer
			s, err := store.OpenFile(path, store.FileOptions{Logger: testLogger(&logBuf)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if _, err := s.Append(ctx, []byte("a")); err != nil {
				t.Fatal(err)
			}
			os.Remove(path)
			if how == "replaced" {
				s2, err := store.OpenFile(path, store.FileOptions{})
				if err != nil {
					t.Fatalf("a second store on the new file: %v", err)
				}
				defer s2.Close()
			}
			if v, err := s.Append(ctx, []byte("b")); err == nil {
				t.Fatalf("append answered (%q) after the log was %s", v, how)
			} else if !strings.Contains(err.Error(), how) {
				t.Errorf("error %q does not say the file was %s", err, how)
			}
			if _, err := s.Append(ctx, []byte("c")); err == nil {
				t.Fatal("a later append was answered")
			}
			if !strings.Contains(logBuf.String(), "level=ERROR") {
				t.Errorf("no ERROR logged:\n%s", logBuf.String())
			}
		})
	}
}

// Flush waits for appends whose callers gave up: after it, Value is what a
// restart recovers. (Before, strsvr printed v without the appends still in
// flight at SIGTERM, 1-6 bytes short.)
func TestFileFlushThenValueIsSaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.log")
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Callers that give up: their last appends are in flight.
	testkit.AppendersGiveUp(func(ctx context.Context, letter byte) { s.Append(ctx, []byte{letter}) })
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, _ := s.Value(context.Background())
	s.Close()
	s2, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, _ := s2.Value(context.Background()); !bytes.Equal(got, v) {
		t.Fatalf("Value after Flush had %d bytes, a restart recovers %d", len(v), len(got))
	}
}

func testLogger(b *testkit.SafeBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
