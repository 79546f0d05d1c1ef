package redisstore

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/store"
)

var _ store.Generational = (*Store)(nil)

// openLogged opens a store at url whose log goes to logs.
func openLogged(t *testing.T, url string, logs *testkit.SafeBuffer) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, url, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendGen appends p, again once the store finds Redis again if it was
// unreachable (after a restart or a failover the store needs a probe or
// two to find it).
func appendGen(t *testing.T, s *Store, p string) (string, uint64) {
	t.Helper()
	expired := time.After(15 * time.Second)
	for {
		v, gen, err := s.AppendGen(context.Background(), []byte(p))
		if err == nil {
			return string(v), gen
		}
		select {
		case <-s.health.upChan():
		case <-expired:
			t.Fatalf("Append(%q): %v", p, err)
		}
	}
}

func valueGen(t *testing.T, s *Store) (string, uint64) {
	t.Helper()
	v, gen, err := s.ValueGen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return string(v), gen
}

// When Redis loses v, by any of the four ways it can, the store does not
// answer from its copy: the next append or read returns the true v in a
// new generation, and the store says so once at WARN. (Before: the copy
// was trusted, and a framed client was shown "h" and "hel" for "Z" and
// "ZY"; and after a failover to a replica that missed writes, v stayed
// in the same epoch and the copy's lost bytes were served as v.)
func TestResetDetected(t *testing.T) {
	lose := map[string]func(t *testing.T, r *redistest.Server){
		"DEL": func(t *testing.T, r *redistest.Server) {
			if err := redisClient(t, r).Del(context.Background(), "v").Err(); err != nil {
				t.Fatal(err)
			}
		},
		"FLUSHALL": func(t *testing.T, r *redistest.Server) {
			if err := redisClient(t, r).FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		},
		"restart without persistence": func(t *testing.T, r *redistest.Server) {
			r.Kill()
			if err := r.Start(); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, how := range lose {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t, "--appendonly", "no")
			var logs testkit.SafeBuffer
			a := openLogged(t, r.URL("v"), &logs)
			b := openLogged(t, r.URL("v"), &logs)
			appendGen(t, a, "hello")
			_, genA := appendGen(t, a, "world")
			_, genB := valueGen(t, b)
			how(t, r)
			v, gen := appendGen(t, a, "Z")
			if v != "Z" || gen == genA {
				t.Fatalf("after v was lost: Append(Z) = %q in generation %d (before: %d), want \"Z\" in a new one", v, gen, genA)
			}
			if v, gen := appendGen(t, a, "Y"); v != "ZY" || gen != genA+1 {
				t.Fatalf("Append(Y) = %q gen %d, want \"ZY\" gen %d", v, gen, genA+1)
			}
			if v, gen := valueGen(t, b); v != "ZY" || gen == genB {
				t.Fatalf("other store: Value = %q gen %d (before: %d), want \"ZY\" in a new generation", v, gen, genB)
			}
			if n := strings.Count(logs.String(), "level=WARN msg=\"v in Redis is not the v this server had: Redis lost it"); n != 2 {
				t.Errorf("%d WARN lines about the reset, want one per store:\n%s", n, logs.String())
			}
		})
	}
}

// A failover to a replica that missed writes: v keeps its epoch but loses
// its last bytes. The store whose copy holds the lost bytes drops it (a new
// generation, a WARN); a store whose copy is still a prefix of v keeps it,
// even after v grew past the lost bytes' end again, which only the checksum
// can tell apart.
func TestResetDetectedFailover(t *testing.T) {
	t.Parallel()
	// No pause before the first sync (Redis waits 5 s by default for more
	// replicas to share it).
	master := redistest.New(t, "--repl-diskless-sync-delay", "0")
	link := redistest.NewProxy(t, master.Addr()) // the replication link
	replica := redistest.New(t, "--replicaof", "127.0.0.1", strconv.Itoa(link.Port()))
	rc := redisClient(t, replica)
	ctx := context.Background()
	// replicated waits until the replica has every write made so far on
	// the master: WAIT counts the replicas that acknowledged this
	// connection's writes, and replication keeps order, so a write of ours
	// after the stores' own reaches the replica after theirs.
	mc := redisClient(t, master).Conn()
	t.Cleanup(func() { mc.Close() })
	replicated := func(what string) {
		t.Helper()
		if err := mc.Incr(ctx, "probe").Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := mc.Wait(ctx, 1, 15*time.Second).Result(); err != nil || n < 1 {
			t.Fatalf("the replica does not have %s within 15s (WAIT: %d, %v)", what, n, err)
		}
	}

	front := redistest.NewProxy(t, master.Addr()) // where the stores find "the master"
	var logs testkit.SafeBuffer
	a := openLogged(t, front.URL("v"), &logs)
	b := openLogged(t, front.URL("v"), &logs)
	appendGen(t, a, "hello")
	_, genB := valueGen(t, b) // b's copy: "hello"
	replicated("hello")
	link.Point("") // the replica misses what follows
	v, genA := appendGen(t, a, "world")
	if v != "helloworld" {
		t.Fatalf("Append(world) = %q", v)
	}
	if err := rc.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	front.Point(replica.Addr()) // failover: the stores now reach the old replica

	// b's copy "hello" is still a prefix: no reset for b.
	if v, gen := appendGen(t, b, "12345678"); v != "hello12345678" || gen != genB {
		t.Fatalf("b after the failover: %q gen %d, want \"hello12345678\" gen %d", v, gen, genB)
	}
	// a's copy "helloworld" is not, though v is longer than it again.
	if v, gen := appendGen(t, a, "Z"); v != "hello12345678Z" || gen == genA {
		t.Fatalf("a after the failover: %q gen %d (before %d), want \"hello12345678Z\" in a new generation", v, gen, genA)
	}
	if n := strings.Count(logs.String(), "does not continue it"); n != 1 {
		t.Errorf("%d WARN lines about the failover, want 1 (store a only):\n%s", n, logs.String())
	}
}

// v written by hand (not through tcplab) is read as it is, and a copy of
// the earlier v is dropped.
func TestResetByHand(t *testing.T) {
	r := redistest.New(t)
	var logs testkit.SafeBuffer
	a := openLogged(t, r.URL("v"), &logs)
	_, gen := appendGen(t, a, "abc")
	if err := redisClient(t, r).Append(context.Background(), "v", "!").Err(); err != nil {
		t.Fatal(err)
	}
	if v, g := valueGen(t, a); v != "abc!" || g == gen {
		t.Fatalf("Value after APPEND by hand: %q gen %d (before %d)", v, g, gen)
	}
	if v, _ := appendGen(t, a, "d"); v != "abc!d" {
		t.Fatalf("Append after APPEND by hand: %q", v)
	}
	if v, _ := appendGen(t, a, "e"); v != "abc!de" {
		t.Fatalf("Append: %q", v)
	}
	if !strings.Contains(logs.String(), "something other than tcplab") {
		t.Errorf("no WARN naming the cause:\n%s", logs.String())
	}
}

// Flush waits for appends whose callers gave up: after it, Value is what
// Redis holds and nothing more arrives (strsvr prints v after it).
func TestFlushWaitsForAppendsInFlight(t *testing.T) {
	r := redistest.New(t)
	s := open(t, r, "v")
	// Callers that give up: their last appends are in flight.
	testkit.AppendersGiveUp(func(ctx context.Context, letter byte) { s.Append(ctx, []byte{letter}) })
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every append has its answer, so Redis has run every script: none is
	// left to land later.
	s.flight.mu.Lock()
	n := s.flight.n
	s.flight.mu.Unlock()
	if n != 0 {
		t.Fatalf("Flush returned with %d appends queued or on the wire", n)
	}
	v := mustValue(t, s)
	if got, _ := redisClient(t, r).Get(context.Background(), "v").Result(); got != v {
		t.Fatalf("Value after Flush: %d bytes; Redis holds %d", len(v), len(got))
	}
}

// A same-length edit of v by hand is seen while letters keep coming: the
// refresher compares the copy in passes, so it comes back to the old
// bytes however fast v grows. (Before: each round compared the piece
// after the last one, which under a steady flow was only the newest
// bytes, and an edit near the start was never seen; the fault checker
// found it.)
func TestSameLengthEditSeenWhileLettersFlow(t *testing.T) {
	r := redistest.New(t)
	var logs testkit.SafeBuffer
	s := openLogged(t, r.URL("v"), &logs)
	leave, err := s.Join(context.Background()) // a client: the refresher runs
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	appendGen(t, s, "hello")
	ctx, stop := context.WithCancel(context.Background())
	flowing := make(chan struct{})
	go func() {
		defer close(flowing)
		for ctx.Err() == nil {
			s.Append(ctx, []byte("x"))
		}
	}()
	defer func() { stop(); <-flowing }()
	// The pause is the point: the refresher goes round a few times while
	// letters flow, so that its place in v is past the edit.
	time.Sleep(3 * refreshEvery)
	if err := redisClient(t, r).SetRange(context.Background(), "v", 1, "EL").Err(); err != nil {
		t.Fatal(err)
	}
	if !testkit.WaitWritten(10*time.Second, nil, func(s string) bool { return strings.Contains(s, "to the same length") }, &logs) {
		t.Fatalf("no WARN within 10s of the edit:\n%s", logs.String())
	}
}
