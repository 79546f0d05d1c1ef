package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/datalog"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// stores returns a fresh store of each kind private to one test.
func stores(t *testing.T) map[string]func() store.Store {
	return map[string]func() store.Store{
		"memory": func() store.Store { return store.NewMemory() },
		"file-always": func() store.Store {
			s, err := store.OpenFile(filepath.Join(t.TempDir(), "v.log"), store.FileOptions{Fsync: store.FsyncAlways})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"file-interval": func() store.Store {
			s, err := store.OpenFile(filepath.Join(t.TempDir(), "v.log"), store.FileOptions{Fsync: store.FsyncInterval, Interval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestStoreContract(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open()
			defer s.Close()
			v1, err := s.Append(ctx, []byte("a"))
			if err != nil || string(v1) != "a" {
				t.Fatalf("Append a: %q %v", v1, err)
			}
			v2, _ := s.Append(ctx, []byte("bc"))
			if string(v2) != "abc" || string(v1) != "a" {
				t.Fatalf("after bc: v1 %q v2 %q", v1, v2)
			}
			// The returned slice is capped: appending to it cannot touch v.
			_ = append(v1, 'X')
			if v, _ := s.Value(ctx); string(v) != "abc" {
				t.Fatalf("Value %q", v)
			}
			ch, err := s.Changes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			leave, err := s.Join(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := s.Clients(ctx); n != 1 {
				t.Fatalf("Clients %d after Join", n)
			}
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatal("no change signal after Join")
			}
			leave()
			leave() // twice: no effect
			if n, _ := s.Clients(ctx); n != 0 {
				t.Fatalf("Clients %d after leave", n)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, ok := <-ch; ok {
				// a pending signal may remain; the channel must then close
				if _, ok := <-ch; ok {
					t.Fatal("Changes channel not closed by Close")
				}
			}
			if _, err := s.Append(ctx, []byte("x")); err != store.ErrClosed {
				t.Fatalf("Append after Close: %v", err)
			}
		})
	}
}

// Concurrent appends: every one's bytes stay together, each reply is a
// prefix of the final v, and each writer's appends are in its order.
func TestStoreConcurrentAppends(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open()
			defer s.Close()
			const writers, each = 20, 50
			replies := make([][][]byte, writers)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						v, err := s.Append(ctx, fmt.Appendf(nil, "<%d.%d>", w, i))
						if err != nil {
							t.Error(err)
							return
						}
						replies[w] = append(replies[w], v)
					}
				})
			}
			wg.Wait()
			final, _ := s.Value(ctx)
			for w := range writers {
				last := -1
				for i, v := range replies[w] {
					if !bytes.HasPrefix(final, v) {
						t.Fatalf("reply %d of writer %d is not a prefix of v", i, w)
					}
					tok := fmt.Appendf(nil, "<%d.%d>", w, i)
					if !bytes.HasSuffix(v, tok) {
						t.Fatalf("reply does not end with its own append %s", tok)
					}
					at := bytes.Index(final, tok)
					if at <= last {
						t.Fatalf("writer %d out of order at %d", w, i)
					}
					last = at
				}
			}
		})
	}
}

func TestChangesCoalesceAndEndWithContext(t *testing.T) {
	s := store.NewMemory()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, _ := s.Changes(ctx)
	for range 100 {
		s.Append(ctx, []byte("x"))
	}
	<-ch
	select {
	case <-ch:
		t.Fatal("100 changes gave more than one pending signal")
	default:
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("signal after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed when ctx ended")
	}
}

func TestFileRecoversExactly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.log")
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 300 {
		p := []byte{byte(i), 0, '\n'} // NULs and newlines are data too
		want = append(want, p...)
		if _, err := s.Append(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("z"), datalog.MaxRecord+10) // cut into two records
	want = append(want, big...)
	s.Append(ctx, big)
	if _, err := store.OpenFile(path, store.FileOptions{}); err == nil {
		t.Fatal("second open of a locked data file succeeded")
	}
	s.Close()
	s2, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v, _ := s2.Value(ctx); !bytes.Equal(v, want) {
		t.Fatalf("recovered %d bytes, want %d", len(v), len(want))
	}
	if v, _ := s2.Append(ctx, []byte("!")); !bytes.Equal(v, append(want, '!')) {
		t.Fatal("append after recovery")
	}
}

// A torn or damaged tail is cut back to the last whole, valid record.
func TestFileTornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "v.log")
	s, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Append(ctx, []byte("abc"))
	s.Append(ctx, []byte("de"))
	s.Close()
	whole, _ := os.ReadFile(path)
	lastRecord := len(whole) - (datalog.RecordHeader + 2)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"intact", whole, "abcde"},
		{"short header", whole[:lastRecord+3], "abc"},
		{"short data", whole[:len(whole)-1], "abc"},
		{"garbage after", append(bytes.Clone(whole), 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5), "abcde"},
		{"zeros after", append(bytes.Clone(whole), make([]byte, 4096)...), "abcde"},
		{"zeroed last data", append(bytes.Clone(whole[:len(whole)-2]), 0, 0), "abc"},
		{"torn magic", []byte(datalog.Magic1[:5]), ""},
		{"magic only", []byte(datalog.Magic1), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			os.WriteFile(p, c.file, 0o644)
			s, err := store.OpenFile(p, store.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := s.Value(ctx); string(v) != c.want {
				t.Fatalf("recovered %q, want %q", v, c.want)
			}
			s.Append(ctx, []byte("Z"))
			s.Close()
			s, err = store.OpenFile(p, store.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, _ := s.Value(ctx); string(v) != c.want+"Z" {
				t.Fatalf("after cut and append: %q", v)
			}
		})
	}
}

func TestFileRefusesForeignFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(p, []byte("my precious notes\n"), 0o644)
	if _, err := store.OpenFile(p, store.FileOptions{}); err == nil {
		t.Fatal("opened a file that is not a data file")
	}
	if b, _ := os.ReadFile(p); string(b) != "my precious notes\n" {
		t.Fatal("foreign file modified")
	}
}

// AppendCapped checks the limit and appends as one step: however many
// writers race, v never grows past the limit, a refused append stores
// nothing, and appends that fit are all taken.
func TestStoreAppendCapped(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, ok := open().(store.Capped)
			if !ok {
				t.Fatalf("%s store does not implement store.Capped", name)
			}
			defer s.Close()
			if v, err := s.AppendCapped(ctx, []byte("abc"), 4); err != nil || string(v) != "abc" {
				t.Fatalf("AppendCapped abc, limit 4: %q %v", v, err)
			}
			if _, err := s.AppendCapped(ctx, []byte("de"), 4); !errors.Is(err, store.ErrFull) {
				t.Fatalf("AppendCapped de past the limit: %v, want ErrFull", err)
			}
			if v, err := s.AppendCapped(ctx, []byte("d"), 4); err != nil || string(v) != "abcd" {
				t.Fatalf("AppendCapped d, exactly to the limit: %q %v", v, err)
			}
			if v, err := s.AppendCapped(ctx, []byte("e"), 0); err != nil || string(v) != "abcde" {
				t.Fatalf("AppendCapped with no limit: %q %v", v, err)
			}
			const limit, writers, each, chunk = 1000, 16, 40, 7
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for range each {
						if _, err := s.AppendCapped(ctx, bytes.Repeat([]byte("x"), chunk), limit); err != nil && !errors.Is(err, store.ErrFull) {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			v, _ := s.Value(ctx)
			// 5 + 7k bytes: the largest such length within the limit is 999.
			if len(v) != 999 {
				t.Fatalf("len(v) = %d after racing capped appends, want 999 (limit %d)", len(v), limit)
			}
		})
	}
}
