package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		addr    string
		db      int
		key     string
		lease   time.Duration
		pass    string
		tls     bool
		wantErr string
	}{
		{url: "redis://127.0.0.1:6379/0?key=v", addr: "127.0.0.1:6379", key: "v", lease: defaultLease},
		{url: "redis://h", addr: "h:6379", key: defaultKey, lease: defaultLease},
		{url: "redis://:s3cret@h:7000/3?key=a:b&lease=2s", addr: "h:7000", db: 3, key: "a:b", lease: 2 * time.Second, pass: "s3cret"},
		{url: "rediss://user:pw@[::1]:6380/1?key=x&dial_timeout=1s", addr: "[::1]:6380", db: 1, key: "x", lease: defaultLease, pass: "pw", tls: true},
		{url: "http://h/0?key=v", wantErr: "scheme must be redis:// or rediss://"},
		{url: "redis://h/0?key=", wantErr: "empty key"},
		{url: "redis://h/0?key=v&lease=forever", wantErr: "lease must be a duration"},
		{url: "redis://h/0?key=v&lease=1ms", wantErr: "lease must be a duration"},
		{url: "redis://:s3cret@h/zero?key=v", wantErr: "invalid database number"},
		{url: "redis://:s3cret@h/0?key=v&colour=red", wantErr: "unexpected option: colour"},
		{url: "redis://h:port/0", wantErr: "invalid store URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			cfg, err := ParseURL(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := cfg.Options
			if o.Addr != tt.addr || o.DB != tt.db || cfg.Key != tt.key || cfg.Lease != tt.lease || o.Password != tt.pass || (o.TLSConfig != nil) != tt.tls {
				t.Errorf("got addr %s db %d key %q lease %s password %q tls %v", o.Addr, o.DB, cfg.Key, cfg.Lease, o.Password, o.TLSConfig != nil)
			}
			if o.MaxRetries != -1 {
				t.Errorf("MaxRetries = %d: appends must not be retried by go-redis", o.MaxRetries)
			}
			if o.Password != "" && (strings.Contains(cfg.Shown, o.Password) || !strings.Contains(cfg.Shown, o.Addr)) {
				t.Errorf("Shown = %q: want the URL without its password", cfg.Shown)
			}
		})
	}
}

// open opens a store on r for key and closes it when the test ends.
func open(t *testing.T, r *redistest.Server, key string, extra ...string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, r.URL(key, extra...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAppend(t *testing.T, s store.Store, p string) string {
	t.Helper()
	v, err := s.Append(context.Background(), []byte(p))
	if err != nil {
		t.Fatalf("Append(%q): %v", p, err)
	}
	return string(v)
}

func mustValue(t *testing.T, s store.Store) string {
	t.Helper()
	v, err := s.Value(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// redisClient is a plain client on r, to look at or tamper with the keys.
func redisClient(t *testing.T, r *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaintNotificationsConfig: nil})
	t.Cleanup(func() { c.Close() })
	return c
}

// Two stores on one key behave as one v: each append answers v right after
// it, including the bytes the other process appended.
func TestAppendAcrossProcesses(t *testing.T) {
	r := redistest.New(t)
	a, b := open(t, r, "v"), open(t, r, "v")
	if got := mustValue(t, a); got != "" {
		t.Fatalf("new v = %q, want empty", got)
	}
	steps := []struct {
		s    store.Store
		p    string
		want string
	}{
		{a, "a", "a"},
		{a, "b", "ab"},
		{b, "c", "abc"},
		{a, "d", "abcd"},
		{b, "\x00\xff\n", "abcd\x00\xff\n"},
		{a, "", "abcd\x00\xff\n"},
	}
	for _, st := range steps {
		if got := mustAppend(t, st.s, st.p); got != st.want {
			t.Fatalf("Append(%q) = %q, want %q", st.p, got, st.want)
		}
	}
	if got := mustValue(t, b); got != "abcd\x00\xff\n" {
		t.Errorf("Value = %q", got)
	}
	if got, _ := redisClient(t, r).Get(context.Background(), "v").Result(); got != "abcd\x00\xff\n" {
		t.Errorf("GET v in Redis = %q", got)
	}
	// Another key is another v.
	if got := mustAppend(t, open(t, r, "w"), "z"); got != "z" {
		t.Errorf("key w: %q", got)
	}
}

// Many clients on two processes: every byte lands once, each client's bytes
// in its own order, every reply a prefix of the final v.
func TestConcurrentAppends(t *testing.T) {
	r := redistest.New(t)
	stores := []*Store{open(t, r, "v"), open(t, r, "v")}
	const clients, letters = 60, 40
	replies := make([][]string, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[c%len(stores)]
			for i := range letters {
				v, err := s.Append(context.Background(), []byte{byte(c), byte(i)})
				if err != nil {
					errs <- err
					return
				}
				replies[c] = append(replies[c], string(v))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	final := mustValue(t, stores[0])
	checkFinal(t, final, replies, clients, letters)
}

// checkFinal checks v made of 2-byte records (client, index) against what
// the clients were answered.
func checkFinal(t *testing.T, final string, replies [][]string, clients, letters int) {
	t.Helper()
	if len(final) != 2*clients*letters {
		t.Fatalf("final v has %d bytes, want %d", len(final), 2*clients*letters)
	}
	next := make([]int, clients)
	for i := 0; i < len(final); i += 2 {
		c, n := int(final[i]), int(final[i+1])
		if c >= clients || n != next[c] {
			t.Fatalf("record %d is client %d letter %d, want letter %d", i/2, c, n, next[c])
		}
		next[c]++
	}
	for c, rs := range replies {
		for _, v := range rs {
			if !strings.HasPrefix(final, v) {
				t.Fatalf("client %d got a reply of %d bytes that is not a prefix of v", c, len(v))
			}
		}
	}
}

// A v deleted behind the stores' back is not resurrected from their copies.
func TestDeletedValueIsNotTrusted(t *testing.T) {
	r := redistest.New(t)
	a, b := open(t, r, "v"), open(t, r, "v")
	mustAppend(t, a, "abc")
	mustAppend(t, b, "def")
	if err := redisClient(t, r).Del(context.Background(), "v").Err(); err != nil {
		t.Fatal(err)
	}
	// An empty append reads Redis.
	if got := mustAppend(t, a, ""); got != "" {
		t.Errorf("v after DEL = %q, want empty", got)
	}
	if got := mustAppend(t, b, "xyzxyzxyz"); got != "xyzxyzxyz" {
		t.Errorf("Append after DEL = %q", got)
	}
	if got := mustAppend(t, a, "!"); got != "xyzxyzxyz!" {
		t.Errorf("Append on the other store = %q", got)
	}
}

func TestChangesAcrossProcesses(t *testing.T) {
	r := redistest.New(t)
	a, b := open(t, r, "v"), open(t, r, "v")
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := a.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitSignal := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no signal on the other process within 5s", what)
		}
	}
	// a hears b once Redis has confirmed a's subscription, which signals
	// every watcher: wait for that, unless it came before ch was made.
	if !a.count.subscribed.Load() {
		waitSignal("a's subscription")
	}
	drain(ch)
	mustAppend(t, b, "x")
	waitSignal("append x on b")
	drain(ch)
	mustAppend(t, b, "y")
	waitSignal("append on b")
	if got := mustValue(t, a); !strings.HasSuffix(got, "xy") {
		t.Errorf("a sees %q", got)
	}
	leave, err := b.Join(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitSignal("join on b")
	leave()
	waitSignal("leave on b")
	cancel()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after its context ended")
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func clients(t *testing.T, s store.Store) int64 {
	t.Helper()
	n, err := s.Clients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitClients waits until s counts want clients: another process's change
// reaches s one pub/sub message later, and Changes signals it then (as it
// does a lease that ran out, when a live process sweeps it).
func waitClients(t *testing.T, s store.Store, want int64, what string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expired := time.After(5 * time.Second)
	for {
		n := clients(t, s)
		if n == want {
			return
		}
		select {
		case <-ch:
		case <-expired:
			t.Fatalf("%s: Clients = %d, want %d", what, n, want)
		}
	}
}

func TestGroupCount(t *testing.T) {
	r := redistest.New(t)
	a, b := open(t, r, "v"), open(t, r, "v")
	var leaves []func()
	for _, s := range []*Store{a, a, b} {
		leave, err := s.Join(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leave)
	}
	waitClients(t, a, 3, "a after three joins")
	waitClients(t, b, 3, "b after three joins")
	leaves[0]()
	leaves[0]() // a second call has no effect
	if n := clients(t, a); n != 2 {
		t.Fatalf("after one leave (called twice), Clients on the same process = %d, want 2 at once", n)
	}
	waitClients(t, b, 2, "b after one leave on a")
	// Closing a process removes its clients at once, without waiting for
	// the lease.
	b.Close()
	waitClients(t, a, 1, "after b closed")
	leaves[1]()
	if n := clients(t, a); n != 0 {
		t.Fatalf("after the last leave, Clients = %d, want 0", n)
	}
	leaves[2]() // after Close: nothing happens, nothing breaks
}

// A process that dies without leaving stops counting once its lease runs
// out, and the survivors are told.
func TestDeadProcessLeaseExpires(t *testing.T) {
	t.Parallel() // mostly waiting on leases and restarts
	r := redistest.New(t)
	const lease = "lease=900ms"
	a, b := open(t, r, "v", lease), open(t, r, "v", lease)
	for range 3 {
		if _, err := a.Join(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	leave, err := b.Join(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	ch, err := b.Changes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The pause is the point: past the first lease (900ms) only a's
	// heartbeats keep its clients counted.
	time.Sleep(1200 * time.Millisecond)
	waitClients(t, b, 4, "both alive")
	drain(ch)
	a.shutdown() // as if killed: no leave
	waitClients(t, b, 1, "dead process's lease run out")
	select {
	case <-ch:
	case <-time.After(3 * time.Second):
		t.Fatal("survivor not told that the dead process's clients left")
	}
	if n, _ := redisClient(t, r).ZCard(context.Background(), "v:servers").Result(); n != 1 {
		t.Errorf("%d leases left in v:servers, want 1 (the dead one swept)", n)
	}
}

func TestOpenErrors(t *testing.T) {
	r := redistest.New(t, "--requirepass", "s3cret")
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: "s3cret"})
	defer c.Close()
	if err := c.RPush(context.Background(), "list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	down := fmt.Sprintf("127.0.0.1:%d", testkit.StaticPort(t))
	tests := []struct {
		name, url, want string
	}{
		{"unreachable", "redis://" + down + "/0?key=v", "redis: connect " + down + ": connection refused"},
		{"no password", r.URL("v"), "NOAUTH"},
		{"wrong password", "redis://:nope@" + r.Addr() + "/0?key=v", "WRONGPASS"},
		{"wrong type", "redis://:s3cret@" + r.Addr() + "/0?key=list", `key "list" holds a list, not a string`},
		{"bad URL", "redis://" + r.Addr() + "/0?key=v&lease=x", "invalid store URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			s, err := Open(ctx, tt.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q, want one line containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "nope") {
				t.Errorf("error shows the password: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Open took %s to fail", d)
			}
		})
	}
	s, err := Open(context.Background(), "redis://:s3cret@"+r.Addr()+"/0?key=v")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustAppend(t, s, "ok"); got != "ok" {
		t.Errorf("with the password: %q", got)
	}
}

func TestClose(t *testing.T) {
	r := redistest.New(t)
	s := open(t, r, "v")
	ch, err := s.Changes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	for range ch {
	}
	if _, err := s.Append(context.Background(), []byte("x")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := s.Value(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Value after Close: %v", err)
	}
	if _, err := s.Join(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Join after Close: %v", err)
	}
	if _, err := s.Changes(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Changes after Close: %v", err)
	}
}

// Redis stopped and started again while clients append: appends fail with
// an error while it is away (never a wrong v), the store says so once,
// comes back by itself, and no acknowledged byte is lost.
func TestRedisRestart(t *testing.T) {
	t.Parallel() // mostly waiting on leases and restarts
	for _, tt := range []struct {
		name string
		kill bool // SIGKILL instead of SIGTERM; needs appendfsync always
	}{{"stop", false}, {"kill", true}} {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t, "--appendfsync", "always")
			var logs testkit.SafeBuffer
			s, err := Open(context.Background(), r.URL("v"), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const workers = 8
			var (
				mu       sync.Mutex
				acked    [][]byte // every acknowledged reply
				failures int
				firstErr error
			)
			progress := make(chan struct{}, 1) // an append was answered
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						v, err := s.Append(context.Background(), []byte{'a' + byte(w)})
						mu.Lock()
						if err != nil {
							failures++
							if firstErr == nil {
								firstErr = err
							}
						} else {
							acked = append(acked, v)
						}
						mu.Unlock()
						select {
						case progress <- struct{}{}:
						default:
						}
						if err != nil {
							// A client retrying after a refusal pauses, as
							// a person would; the pause is the load's
							// shape, not a wait for anything.
							time.Sleep(10 * time.Millisecond)
						}
					}
				}()
			}
			// await waits for the workers' counts to satisfy cond.
			await := func(what string, cond func(acks, fails int) bool) {
				t.Helper()
				expired := time.After(10 * time.Second)
				for {
					mu.Lock()
					ok := cond(len(acked), failures)
					mu.Unlock()
					if ok {
						return
					}
					select {
					case <-progress:
					case <-expired:
						t.Fatalf("%s within 10s; log: %s", what, logs.String())
					}
				}
			}
			await("no 100 appends answered", func(acks, _ int) bool { return acks >= 100 })
			if tt.kill {
				r.Kill()
			} else {
				r.Stop()
			}
			mu.Lock()
			before := failures
			mu.Unlock()
			await("no append failed while Redis was down", func(_, fails int) bool { return fails > before })
			mu.Lock()
			failedWhileDown := failures
			mu.Unlock()
			if err := r.Start(); err != nil {
				t.Fatal(err)
			}
			// The store finds Redis again by itself, and appends succeed.
			select {
			case <-s.health.upChan():
			case <-time.After(10 * time.Second):
				t.Fatalf("store still finds Redis unreachable 10s after it came back; log: %s", logs.String())
			}
			mu.Lock()
			ackedBack := len(acked)
			mu.Unlock()
			await("no append succeeded after Redis came back", func(acks, _ int) bool { return acks > ackedBack })
			close(stop)
			wg.Wait()
			if failedWhileDown == 0 {
				t.Error("no append failed while Redis was down")
			}
			final := mustValue(t, s)
			longest := 0
			for _, v := range acked {
				if !strings.HasPrefix(final, string(v)) {
					t.Fatalf("acknowledged v of %d bytes is not a prefix of the final v (%d bytes)", len(v), len(final))
				}
				longest = max(longest, len(v))
			}
			t.Logf("%d appends acknowledged, %d failed (first: %v), final v %d bytes", len(acked), failures, firstErr, len(final))
			if strings.Contains(firstErr.Error(), "\n") || !strings.Contains(firstErr.Error(), r.Addr()) {
				t.Errorf("append error %q: want one line naming Redis", firstErr)
			}
			if got := strings.Count(logs.String(), "redis lost"); got != 1 {
				t.Errorf("%d 'redis lost' lines, want 1:\n%s", got, logs.String())
			}
			if !strings.Contains(logs.String(), "redis reachable again") {
				t.Errorf("no 'reachable again' line:\n%s", logs.String())
			}
		})
	}
}

// rediss:// speaks TLS and verifies the server's certificate.
func TestTLS(t *testing.T) {
	r := redistest.NewTLS(t)
	tests := []struct {
		name, url, wantErr string
	}{
		{"unverified", r.URL("v"), "certificate signed by unknown authority"},
		{"plain text to a TLS port", strings.Replace(r.URL("v"), "rediss://", "redis://", 1), "connection lost"},
		{"skip_verify", r.URL("v", "skip_verify=true"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := Open(ctx, tt.url)
			if tt.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %q, want one line containing %q", err, tt.wantErr)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := mustAppend(t, s, "tls"); got != "tls" {
				t.Errorf("Append over TLS = %q", got)
			}
		})
	}
}

// While Redis is away, Clients waits for it (a server waiting for its group
// to empty must not give up), and appends fail at once.
func TestClientsWaitsForRedis(t *testing.T) {
	t.Parallel() // mostly waiting on leases and restarts
	r := redistest.New(t)
	s := open(t, r, "v")
	leave, err := s.Join(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Append(context.Background(), []byte("x")); err == nil {
		t.Fatal("Append succeeded with Redis stopped")
	}
	if _, err := s.Append(context.Background(), []byte("x")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second Append with Redis stopped: %v, want ErrUnavailable at once", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing appends took %s", d)
	}
	got := make(chan error, 1)
	go func() {
		n, err := s.Clients(context.Background())
		if err == nil && n != 1 {
			err = fmt.Errorf("Clients = %d, want 1", n)
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Clients returned with Redis stopped: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Clients still waiting 10s after Redis came back")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r.Stop()
	if _, err := s.Clients(ctx); err == nil {
		// Served from the count read before: fine only if the store has not
		// noticed yet; force it to notice and ask again.
		s.Append(context.Background(), []byte("y"))
		if _, err := s.Clients(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Clients with Redis stopped and a deadline: %v, want the deadline", err)
		}
	}
}

// An outage longer than the lease lets every lease run out in Redis; when
// Redis comes back the count must not read an empty group while the
// servers are still renewing.
func TestCountAfterOutageLongerThanLease(t *testing.T) {
	t.Parallel() // mostly waiting on leases and restarts
	r := redistest.New(t)
	// a probes Redis at most every second, b every 300 ms: b is back
	// first and must not take a's expired lease for an empty group.
	a, b := open(t, r, "v", "lease=3s"), open(t, r, "v", "lease=900ms")
	leave, err := a.Join(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	waitClients(t, b, 1, "before the outage")
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	// The pause is the point: an outage longer than a's lease (3s).
	time.Sleep(3500 * time.Millisecond)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	// Samples across the 2s after Redis is back, while the servers renew
	// their leases: the pause between samples is the point.
	for range 40 {
		n, err := b.Clients(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("Clients = %d after Redis came back, want 1", n)
		}
		time.Sleep(50 * time.Millisecond) // the pause between samples is the point (above)
	}
}

// ParseURL takes what a user typed: it must never panic, must answer in
// one line, and must not show a password in its error.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379/0?key=v", "rediss://u:pw@h:1/2?key=a&lease=2s",
		"redis://:s3cret@h/zero?key=v", "redis://h/0?key=v&lease=", "redis://[::1", "http://x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := ParseURL(raw)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error of more than one line: %q", msg)
			}
			if u, perr := url.Parse(raw); perr == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 6 && strings.Contains(msg, pw) &&
					!strings.Contains(strings.Replace(raw, pw, "", 1), pw) {
					t.Fatalf("error shows the password %q: %q", pw, msg)
				}
			}
			return
		}
		if cfg.Key == "" || cfg.Lease < 300*time.Millisecond || cfg.Lease > time.Hour || cfg.Options.MaxRetries != -1 {
			t.Fatalf("accepted %q as key %q lease %s retries %d", raw, cfg.Key, cfg.Lease, cfg.Options.MaxRetries)
		}
	})
}
