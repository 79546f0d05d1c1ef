package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tcplab/tcplab/store"
)

// BenchmarkFileAppend is letters appended to a log, one byte each from many
// goroutines (group commit makes batches of them): what the checks done
// per batch (the path still naming the file) cost against the write (and
// fsync) itself.
func BenchmarkFileAppend(b *testing.B) {
	for _, policy := range []store.Fsync{store.FsyncInterval, store.FsyncAlways} {
		b.Run(policyName(policy), func(b *testing.B) {
			s, err := store.OpenFile(filepath.Join(b.TempDir(), "v.log"), store.FileOptions{Fsync: policy})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Append(ctx, []byte{'x'}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func policyName(f store.Fsync) string {
	if f == store.FsyncInterval {
		return "interval"
	}
	return "always"
}
