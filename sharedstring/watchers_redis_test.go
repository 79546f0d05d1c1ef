package sharedstring_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store/redisstore"
)

// watched is what one watcher has been shown: the last v, or the error
// that ended it.
type watched struct {
	mu      sync.Mutex
	v       []byte
	err     error
	changed chan struct{} // closed and replaced at every frame
}

// watch reads c's frames until it ends, noting each.
func watch(c *sharedstring.Client) *watched {
	w := &watched{changed: make(chan struct{})}
	go func() {
		for {
			_, v, err := c.Next()
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else {
				w.v = bytes.Clone(v)
			}
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w
}

// state returns what the watcher holds now, and a channel closed at its
// next frame.
func (w *watched) state() ([]byte, <-chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.v, w.changed, w.err
}

// currentOrTold waits until the watcher shows want or has been told, by an
// 'e' frame, that it will not; it fails the test after limit.
func (w *watched) currentOrTold(t *testing.T, name string, want []byte, limit time.Duration) {
	t.Helper()
	expired := time.After(limit)
	for {
		v, changed, err := w.state()
		if err != nil || bytes.Equal(v, want) {
			return
		}
		select {
		case <-changed:
		case <-expired:
			t.Errorf("%s: still connected and silent on a v of %d bytes %v after Redis answered again; Redis holds %d", name, len(v), limit, len(want))
			return
		}
	}
}

// A stall of Redis while letters flow (CLIENT PAUSE, DEBUG SLEEP, longer
// than the 5 s a store gives one script) leaves no watcher stale: each one
// catches up to the v Redis holds once it answers again, or is told with
// an 'e' frame. (Before: the watcher's read failed during the stall, its
// goroutine ended, and the watcher stayed connected, never shown another
// letter.)
func TestRedisStallWatchersCurrentOrTold(t *testing.T) {
	for _, stall := range []string{"CLIENT PAUSE", "DEBUG SLEEP"} {
		t.Run(stall, func(t *testing.T) {
			r := redistest.New(t, "--enable-debug-command", "yes")
			ctx := context.Background()
			a, err := redisstore.Open(ctx, r.URL("v"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			b, err := redisstore.Open(ctx, r.URL("v"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			_, port := startServer(t, a, nil)
			var ws []*watched
			for range 6 {
				ws = append(ws, watch(dial(t, port, sharedstring.Options{Watch: true})))
			}
			// Another server's clients type all along.
			typing, stop := context.WithCancel(ctx)
			var typed sync.WaitGroup
			typed.Go(func() {
				for i := 0; typing.Err() == nil; i++ {
					b.Append(typing, []byte{'a' + byte(i%26)})
				}
			})
			defer func() { stop(); typed.Wait() }()
			first, _ := b.Append(ctx, []byte("!"))
			for _, w := range ws { // every watcher is in the flow
				for {
					v, changed, _ := w.state()
					if len(v) >= len(first) {
						break
					}
					<-changed
				}
			}
			rc := redis.NewClient(&redis.Options{Addr: r.Addr(), ReadTimeout: 10 * time.Second})
			defer rc.Close()
			// The stall is the point of the test: 6.5 s, past the 5 s
			// that the stores give one script.
			switch stall {
			case "CLIENT PAUSE":
				if err := rc.Do(ctx, "CLIENT", "PAUSE", "6500", "ALL").Err(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(6500 * time.Millisecond)
			case "DEBUG SLEEP":
				if err := rc.Do(ctx, "DEBUG", "SLEEP", "6.5").Err(); err != nil {
					t.Fatal(err)
				}
			}
			// Redis answers again; letters flow for a little while, once
			// the other server takes them again (its reads wait for Redis).
			for taken := 0; taken < 20; {
				if _, err := b.Append(ctx, []byte("z")); err == nil {
					taken++
				} else if _, err := b.Value(ctx); err != nil {
					t.Fatalf("the other server does not find Redis again: %v", err)
				}
			}
			stop()
			typed.Wait()
			// An append whose context ended may still be on its way to
			// Redis: v is read once every append sent has its answer.
			// (Before: read earlier, it missed the last letter that the
			// watchers then showed: "silent on a v of 46 bytes; Redis
			// holds 45", 1 of 5 runs.)
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			want, err := rc.Get(ctx, "v").Bytes()
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range ws {
				w.currentOrTold(t, fmt.Sprint("watcher ", i), want, 10*time.Second)
			}
		})
	}
}

// v overwritten by hand in Redis to the same length (SET v HELLO over
// hello) is seen: the server says so at WARN, a framed client holding the
// old bytes is ended with "v was reset", a classic client is then sent the
// true v, and the final v is Redis's; overwritten just before the stop, it
// is still the final v, with a WARN. (Before: nothing was seen, the classic
// client got "helloZ" while Redis held "HELLOZ", and the final v printed
// the old bytes.)
func TestRedisSameLengthHandEdit(t *testing.T) {
	for _, when := range []string{"while serving", "just before the stop"} {
		t.Run(when, func(t *testing.T) {
			r := redistest.New(t)
			ctx := context.Background()
			var logs testkit.SafeBuffer
			st, err := redisstore.Open(ctx, r.URL("v"), redisstore.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			srv := &sharedstring.Server{Store: st, Keep: true}
			port, stop := runStoppable(t, srv)
			typist := dial(t, port, sharedstring.Options{})
			classic := dialRaw(t, port)
			if v, err := typist.Send([]byte("hell")); err != nil || string(v) != "hell" {
				t.Fatalf("Send: %q %v", v, err)
			}
			classic.Write([]byte("o"))
			readExactly(t, classic, []byte("hello"))
			rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
			defer rc.Close()
			if err := rc.Set(ctx, "v", "HELLO", 0).Err(); err != nil {
				t.Fatal(err)
			}
			edited := func(text string) bool {
				return strings.Contains(text, "level=WARN") && strings.Contains(text, "something other than tcplab changed it")
			}
			if when == "while serving" {
				if !testkit.WaitWritten(10*time.Second, nil, edited, &logs) {
					t.Fatalf("no WARN within 10s of the edit:\n%s", logs.String())
				}
				classic.Write([]byte("Z"))
				readExactly(t, classic, []byte("HELLOZ"))
				if _, err := typist.Send([]byte("W")); err == nil || !strings.Contains(err.Error(), "v was reset") {
					t.Fatalf("framed client after the edit: %v, want the 'v was reset' frame", err)
				}
			}
			want, _ := rc.Get(ctx, "v").Result()
			got := stop()
			if string(got.v) != want {
				t.Fatalf("final v %q, Redis holds %q", got.v, want)
			}
			if !edited(logs.String()) {
				t.Fatalf("final v differs from the v served, with no WARN:\n%s", logs.String())
			}
		})
	}
}

// runStoppable runs srv on 127.0.0.1:0 and returns its port and a function
// that stops it (as a signal does) and returns what Run returned.
func runStoppable(t *testing.T, srv *sharedstring.Server) (string, func() runResult) {
	t.Helper()
	ln, pc := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan runResult, 1)
	go func() {
		v, err := srv.Run(ctx, &server.Server{}, ln, pc)
		res <- runResult{v, err}
	}()
	var once sync.Once
	var r runResult
	stop := func() runResult {
		once.Do(func() { cancel(); r = <-res })
		return r
	}
	t.Cleanup(func() { stop() })
	return portOf(ln), stop
}

// A failover to a replica that missed the last letters: every watcher that
// was shown them is told "v was reset", with no letter typed after it
// (nothing else would wake it), and a new watcher is shown the v of the
// new master.
func TestRedisFailoverTellsWatchers(t *testing.T) {
	master := redistest.New(t, "--repl-diskless-sync-delay", "0")
	link := redistest.NewProxy(t, master.Addr()) // the replication link
	replica := redistest.New(t, "--replicaof", "127.0.0.1", fmt.Sprint(link.Port()))
	front := redistest.NewProxy(t, master.Addr()) // where the server finds "the master"
	ctx := context.Background()
	st, err := redisstore.Open(ctx, front.URL("v"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, port := startServer(t, st, nil)
	typist := dial(t, port, sharedstring.Options{})
	if _, err := typist.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	mcl := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer mcl.Close()
	mc := mcl.Conn()
	defer mc.Close()
	mc.Incr(ctx, "probe")
	if n, err := mc.Wait(ctx, 1, 15*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("the replica does not have hello (WAIT: %d, %v)", n, err)
	}
	link.Point("") // the replica misses what follows
	if v, err := typist.Send([]byte("world")); err != nil || string(v) != "helloworld" {
		t.Fatalf("Send world: %q %v", v, err)
	}
	var ws []*watched
	for range 4 {
		ws = append(ws, watch(dial(t, port, sharedstring.Options{Watch: true})))
	}
	for _, w := range ws {
		for {
			v, changed, _ := w.state()
			if string(v) == "helloworld" {
				break
			}
			<-changed
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	if err := rc.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	front.Point(replica.Addr())
	for i, w := range ws {
		w.currentOrTold(t, fmt.Sprint("watcher ", i), []byte("hello"), 15*time.Second)
		if _, _, err := w.state(); err == nil || !strings.Contains(err.Error(), "v was reset") {
			t.Errorf("watcher %d: %v, want the 'v was reset' frame", i, err)
		}
	}
	fresh := watch(dial(t, port, sharedstring.Options{Watch: true}))
	fresh.currentOrTold(t, "a new watcher", []byte("hello"), 15*time.Second)
	if v, _, err := fresh.state(); err != nil || string(v) != "hello" {
		t.Errorf("a new watcher: %q %v, want hello", v, err)
	}
}

// A watcher whose store cannot be read for WatchOutage (Redis gone for
// good) is told so with an 'e' frame, never left connected and silent.
func TestRedisOutageTellsWatchers(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	st, err := redisstore.Open(ctx, r.URL("v"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, port := startServer(t, st, func(s *sharedstring.Server) { s.WatchOutage = time.Second })
	typist := dial(t, port, sharedstring.Options{})
	if _, err := typist.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	w := watch(dial(t, port, sharedstring.Options{Watch: true}))
	w.currentOrTold(t, "the watcher", []byte("hello"), 10*time.Second)
	r.Kill()
	// Typing after the loss: the watcher's read fails, and keeps failing.
	typist.Send([]byte("!"))
	expired := time.After(30 * time.Second)
	for {
		_, changed, err := w.state()
		if err != nil {
			if !strings.Contains(err.Error(), "could not read v from its store for 1s") {
				t.Fatalf("watcher ended with %v, want the outage's 'e' frame", err)
			}
			return
		}
		select {
		case <-changed:
		case <-expired:
			t.Fatal("the watcher was neither current nor told 30 s after Redis was gone")
		}
	}
}
