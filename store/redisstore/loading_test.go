package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
)

// A restarted Redis answers SUBSCRIBE while it is still loading its data,
// and -LOADING to everything else. The store must not take its
// subscription coming back for Redis coming back: before, it logged
// "redis reachable again" then, let the next append through to fail with
// LOADING, and logged "redis lost" a second time (TestRedisRestart saw
// that 5 times in 50 runs, when the store resubscribed within the few
// milliseconds Redis spent loading).
func TestLoadingRedisIsNotBackYet(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, "--appendonly", "no")
	var logs testkit.SafeBuffer
	s := openLogged(t, r.URL("v"), &logs)
	appendGen(t, s, "hello")
	// 30 keys of 1500 random (incompressible) bytes, saved: with a load
	// delay of 100 ms a key, the next start loads for 3 s, longer than
	// the store's longest pause (maxBackoff) between two subscriptions.
	c := redisClient(t, r)
	ctx := context.Background()
	for i := range 30 {
		var pad strings.Builder
		for pad.Len() < 1500 {
			pad.WriteString(rand.Text())
		}
		if err := c.Set(ctx, "pad"+strconv.Itoa(i), pad.String(), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	if _, err := s.Append(ctx, []byte("x")); err == nil {
		t.Fatal("append answered with Redis killed")
	}
	// Redis processes its events (answers clients) after each key loaded.
	r.Args = append(r.Args, "--key-load-delay", "100000", "--loading-process-events-interval-bytes", "1024")
	started := make(chan error, 1)
	go func() { started <- r.Start() }() // returns once Redis answers PING: loaded
	var tries int
	for loaded := false; !loaded; {
		select {
		case err := <-started:
			if err != nil {
				t.Fatal(err)
			}
			loaded = true
		default:
		}
		tries++
		// Refused by the store (ErrUnavailable), or sent to Redis.
		if _, err := s.Append(ctx, []byte("y")); err != nil && !errors.Is(err, ErrUnavailable) {
			t.Errorf("append sent to Redis while it was loading: %v", err)
			break
		}
		// A client retrying after a refusal pauses, as a person would;
		// the pause is the load's shape, not a wait for anything.
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-s.health.upChan():
	case <-time.After(10 * time.Second):
		t.Fatalf("store still finds Redis unreachable 10s after it loaded; log: %s", logs.String())
	}
	appendGen(t, s, "!")
	t.Logf("%d appends tried while Redis started", tries)
	if n := strings.Count(logs.String(), "redis lost"); n != 1 {
		t.Errorf("%d 'redis lost' lines, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "redis reachable again"); n != 1 {
		t.Errorf("%d 'reachable again' lines, want 1:\n%s", n, logs.String())
	}
}
