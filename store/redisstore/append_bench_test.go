package redisstore

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redistest"
)

// BenchmarkAppend is one-letter appends from 100 goroutines through one
// store, and reports Redis's own CPU per script call and per letter (from
// INFO commandstats), which is what the checks inside the scripts cost:
// letters/s here is bounded by round trips, not by Redis.
func BenchmarkAppend(b *testing.B) {
	r := redistest.New(b)
	s, err := Open(context.Background(), r.URL("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	ctx := context.Background()
	s.Append(ctx, []byte("warm")) // load the scripts
	rc.ConfigResetStat(ctx)
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/100 + 1
	for range 100 {
		wg.Go(func() {
			for range per {
				if _, err := s.Append(ctx, []byte{'x'}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	info, _ := rc.Info(ctx, "commandstats").Result()
	m := regexp.MustCompile(`cmdstat_evalsha:calls=(\d+),usec=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		b.Fatalf("no evalsha stats in %q", info)
	}
	calls, _ := strconv.ParseFloat(m[1], 64)
	usec, _ := strconv.ParseFloat(m[2], 64)
	b.ReportMetric(usec/calls, "redis-µs/script")
	b.ReportMetric(usec/float64(100*per), "redis-µs/letter")
	b.ReportMetric(float64(100*per)/calls, "letters/script")
}
