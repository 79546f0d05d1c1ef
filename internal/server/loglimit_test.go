package server

import (
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// The invariant of LogLimit, checked on seeded random floods (several
// kinds of record, at random times, in fake time): every record is either
// written or counted in exactly one closing line of its kind, and no kind
// writes more than Burst+1 lines in any interval of Every (its passed
// records, and the count of the interval before).
func TestLimitHandlerBoundsEveryKind(t *testing.T) {
	for seed := range uint64(20) {
		synctest.Test(t, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 19))
			var out testkit.SafeBuffer // closing lines are written by timers' goroutines
			h := NewLimitHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: dropTime}), LogLimit{Burst: 3, Every: 10 * time.Second})
			log := slog.New(h)
			kinds := []string{"client is at", "client refused", "rate limited"}
			sent := map[string]int{}
			start := time.Now()
			for range 2000 {
				k := kinds[rng.IntN(len(kinds))]
				log.Info(k, "addr", "192.0.2.1:"+strconv.Itoa(rng.IntN(60000)))
				sent[k]++
				if rng.IntN(10) == 0 {
					time.Sleep(time.Duration(rng.Int64N(int64(3 * time.Second)))) // fake time: the flood's pauses
				}
			}
			elapsed := time.Since(start)
			h.Flush()
			written, counted := map[string]int{}, map[string]int{}
			summary := regexp.MustCompile(`msg="(.*) … and ([\d,]+) more like it in the last [\d.]+m?s" suppressed=(\d+)`)
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if m := summary.FindStringSubmatch(line); m != nil {
					n, _ := strconv.Atoi(m[3])
					counted[m[1]] += n
					if strings.ReplaceAll(m[2], ",", "") != m[3] {
						t.Fatalf("seed %d: %q", seed, line)
					}
					continue
				}
				k := regexp.MustCompile(`msg="([^"]*)"`).FindStringSubmatch(line)
				if k == nil {
					t.Fatalf("seed %d: line %q", seed, line)
				}
				written[k[1]]++
			}
			windows := int(elapsed/(10*time.Second)) + 1
			for _, k := range kinds {
				if written[k]+counted[k] != sent[k] {
					t.Errorf("seed %d: %s: %d sent, %d written + %d counted", seed, k, sent[k], written[k], counted[k])
				}
				if written[k] > 3*windows {
					t.Errorf("seed %d: %s: %d lines in %d intervals, over 3 a interval", seed, k, written[k], windows)
				}
			}
		})
	}
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}

// The closing line comes when the interval ends, without another record
// to carry it, and says how many: the issue's own example.
func TestLimitHandlerClosesTheIntervalOnItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out testkit.SafeBuffer // the closing line is written by the timer's goroutine
		h := NewLimitHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: dropTime}), LogLimit{})
		log := slog.New(h)
		for range DefaultLogBurst + 14452 {
			log.Info("client refused", "err", "tls: first record does not look like a TLS handshake")
		}
		if n := strings.Count(out.String(), "\n"); n != DefaultLogBurst {
			t.Fatalf("%d lines during the flood, want %d", n, DefaultLogBurst)
		}
		time.Sleep(DefaultLogEvery) // fake time: the interval ends
		synctest.Wait()
		want := `level=INFO msg="client refused … and 14,452 more like it in the last 10s" suppressed=14452` + "\n"
		if !strings.HasSuffix(out.String(), want) {
			t.Fatalf("last line: want %q in\n%s", want, out.String())
		}
		log.Info("client refused") // a new interval: passes
		if n := strings.Count(out.String(), "\n"); n != DefaultLogBurst+2 {
			t.Fatalf("%d lines, want the next record written", n)
		}
	})
}

// Lines: svr's "client is at" on standard output, limited the same way.
func TestLimitHandlerLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out testkit.SafeBuffer
		h := NewLimitHandler(slog.DiscardHandler, LogLimit{Burst: 2})
		w := h.Lines(&out, "client is at")
		for i := range 5 {
			w.Write([]byte("client is at 127.0.0.1:" + strconv.Itoa(40000+i) + "\n"))
		}
		time.Sleep(3 * time.Second) // fake time
		h.Flush()
		want := "client is at 127.0.0.1:40000\nclient is at 127.0.0.1:40001\nclient is at … and 3 more like it in the last 3s\n"
		if out.String() != want {
			t.Fatalf("got %q, want %q", out.String(), want)
		}
	})
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 14452: "14,452", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
