package main

// End-to-end tests of issue 5: several strsvr processes sharing one v in a
// real redis-server (started by the tests on a free loopback port).

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store/redisstore"
)

// startGroupServer starts "tcplab strsvr --store URL [extra] 0" and
// returns it with the port it listens on.
func startGroupServer(t *testing.T, url string, extra ...string) (*testkit.Proc, string) {
	t.Helper()
	return startStrsvr(t, append([]string{"--store", url}, extra...)...)
}

// redisGet reads v straight from Redis.
func redisGet(t *testing.T, r *redistest.Server, key string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	v, err := c.Get(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// typed is what one client sent and was answered: the letters, and the
// length of v in each reply (the reply is v's prefix of that length).
type typed struct {
	letters []byte
	lengths []int
	last    []byte // the last reply
	err     error  // why the client stopped early, if it did
}

// check checks every client against the final v: each reply a prefix of
// it ending in the letter sent, each client's letters in order, and (when
// whole is set) every byte of v some client's acknowledged letter.
func checkClients(t *testing.T, final string, clients []*typed, whole bool) {
	t.Helper()
	owner := make([]int, len(final))
	for i := range owner {
		owner[i] = -1
	}
	for c, ty := range clients {
		if !strings.HasPrefix(final, string(ty.last)) {
			t.Fatalf("client %d: last reply (%d bytes) is not a prefix of the final v (%d bytes)", c, len(ty.last), len(final))
		}
		prev := 0
		for i, n := range ty.lengths {
			if n <= prev || n > len(final) {
				t.Fatalf("client %d letter %d: reply of %d bytes after one of %d (final v %d bytes)", c, i, n, prev, len(final))
			}
			if final[n-1] != ty.letters[i] {
				t.Fatalf("client %d letter %d: v[%d] = %q, want the letter sent, %q", c, i, n-1, final[n-1], ty.letters[i])
			}
			if owner[n-1] != -1 {
				t.Fatalf("byte %d of v acknowledged to clients %d and %d", n-1, owner[n-1], c)
			}
			owner[n-1] = c
			prev = n
		}
	}
	if whole {
		for i, o := range owner {
			if o == -1 {
				t.Fatalf("byte %d of v (%q) was acknowledged to no client", i, final[i])
			}
		}
	}
}

// sendLetter sends one letter and records the reply.
func (ty *typed) sendLetter(c *sharedstring.Client, letter byte) error {
	v, err := c.Send([]byte{letter})
	if err != nil {
		return err
	}
	if len(v) == 0 || v[len(v)-1] != letter {
		return fmt.Errorf("reply %q does not end with the letter sent, %q", v, letter)
	}
	ty.letters = append(ty.letters, letter)
	ty.lengths = append(ty.lengths, len(v))
	ty.last = v
	return nil
}

func dialFramed(t *testing.T, port string) *sharedstring.Client {
	t.Helper()
	c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Mode: sharedstring.Framed, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func finalLine(v string) string { return "the final value of v is " + v + "\n" }

// tutorialFinal is what the tutorial's server prints after its session.
var tutorialFinal = finalLine("abcuuvvdwwe")

// Three strsvr processes on one Redis, 100 clients on each, 100 letters per
// client: one v of 30,000 bytes, each client's letters in order, every
// reply a prefix of it; when the last client of the group leaves, every
// server prints that v and exits 0.
func TestStrsvrRedisGroup(t *testing.T) {
	r := redistest.New(t)
	const servers, perServer, letters = 3, 100, 100
	var procs []*testkit.Proc
	var ports []string
	for range servers {
		p, port := startGroupServer(t, r.URL("group"))
		procs, ports = append(procs, p), append(ports, port)
	}
	// Everyone connects before anyone types, so the group is never empty
	// before the end.
	conns := make([]*sharedstring.Client, servers*perServer)
	for i := range conns {
		conns[i] = dialFramed(t, ports[i%servers])
	}
	clients := make([]*typed, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		clients[i] = &typed{}
		wg.Go(func() {
			defer c.Close()
			for k := range letters {
				if err := clients[i].sendLetter(c, byte('A'+(i*7+k)%58)); err != nil {
					clients[i].err = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, ty := range clients {
		if ty.err != nil {
			t.Fatalf("client %d (server %d) after %d letters: %v", i, i%servers, len(ty.lengths), ty.err)
		}
	}
	final := redisGet(t, r, "group")
	if len(final) != servers*perServer*letters {
		t.Fatalf("final v has %d bytes, want %d", len(final), servers*perServer*letters)
	}
	checkClients(t, final, clients, true)
	for i, p := range procs {
		if code := p.Wait(t, 20*time.Second); code != 0 {
			t.Fatalf("server %d exit %d: %s", i, code, p.Stderr.String())
		}
		if out := p.Stdout.String(); out != finalLine(final) {
			t.Errorf("server %d printed %d bytes, not the final v", i, len(out))
		}
	}
}

// The tutorial's session spread over two servers, with a third that has no
// client of its own: replies interleave across servers exactly as on one,
// and all three print the final v when the last client leaves.
func TestStrsvrRedisTutorialAcrossServers(t *testing.T) {
	r := redistest.New(t)
	a, pa := startGroupServer(t, r.URL("tut"))
	b, pb := startGroupServer(t, r.URL("tut"))
	c, _ := startGroupServer(t, r.URL("tut"))
	dial := func(port string) *sharedstring.Client {
		cl, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Mode: sharedstring.Classic})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	one, two := dial(pa), dial(pb)
	steps := []struct {
		cl           *sharedstring.Client
		letter, want string
	}{
		{one, "a", "a"}, {one, "b", "ab"}, {one, "c", "abc"},
		{two, "u", "abcu"}, {two, "u", "abcuu"}, {two, "v", "abcuuv"}, {two, "v", "abcuuvv"},
		{one, "d", "abcuuvvd"}, {two, "w", "abcuuvvdw"}, {two, "w", "abcuuvvdww"}, {one, "e", "abcuuvvdwwe"},
	}
	for _, s := range steps {
		v, err := s.cl.Send([]byte(s.letter))
		if err != nil {
			t.Fatal(err)
		}
		if string(v) != s.want {
			t.Fatalf("after %q: %q, want %q", s.letter, v, s.want)
		}
	}
	one.Close()
	two.Close()
	for i, p := range []*testkit.Proc{a, b, c} {
		if code := p.Wait(t, 15*time.Second); code != 0 {
			t.Fatalf("server %d exit %d: %s", i, code, p.Stderr.String())
		}
		if got := p.Stdout.String(); got != tutorialFinal {
			t.Errorf("server %d printed %q, want %q", i, got, tutorialFinal)
		}
	}
}

// Kill one strsvr mid-run: its clients see the connection close, the
// others go on, and the group's count drops by its clients within the
// lease.
func TestStrsvrRedisKillOne(t *testing.T) {
	r := redistest.New(t)
	url := r.URL("kill", "lease=1s")
	const servers, perServer = 3, 10
	var procs []*testkit.Proc
	var ports []string
	for range servers {
		p, port := startGroupServer(t, url)
		procs, ports = append(procs, p), append(ports, port)
	}
	group, err := redisstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	// The count in Redis changes with other processes' leases: Poll it.
	waitCount := func(want int64, within time.Duration) {
		t.Helper()
		var n int64
		var err error
		if !testkit.Poll(within, func() bool {
			n, err = group.Clients(context.Background())
			return err == nil && n == want
		}) {
			t.Fatalf("group count %d (err %v), want %d within %s", n, err, want, within)
		}
	}

	conns := make([]*sharedstring.Client, servers*perServer)
	for i := range conns {
		conns[i] = dialFramed(t, ports[i%servers])
	}
	waitCount(servers*perServer, 5*time.Second)
	clients := make([]*typed, len(conns))
	acks := make([]atomic.Int64, len(conns))
	acked := make(chan struct{}, 1)            // noted at each reply
	ended := make([]chan struct{}, len(conns)) // closed when a client stops
	var warm sync.WaitGroup                    // every client has had 10 replies
	warm.Add(len(conns))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		clients[i] = &typed{}
		ended[i] = make(chan struct{})
		wg.Go(func() {
			defer close(ended[i])
			var once sync.Once
			defer once.Do(warm.Done) // also if it stops early
			defer c.Close()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				if err := clients[i].sendLetter(c, byte('a'+(i+k)%26)); err != nil {
					clients[i].err = err
					return
				}
				n := acks[i].Add(1)
				note(acked)
				if n == 10 {
					once.Do(warm.Done)
				}
			}
		})
	}
	warm.Wait()
	victim := servers - 1
	procs[victim].Cmd.Process.Kill()

	// The victim's clients see the close: they stop.
	timeout := time.After(5 * time.Second)
	for i := victim; i < len(conns); i += servers {
		select {
		case <-ended[i]:
		case <-timeout:
			t.Fatalf("client %d of the killed server still gets replies", i)
		}
	}
	// The others go on: each gets 10 more replies.
	for i := range conns {
		if i%servers == victim {
			continue
		}
		target := acks[i].Load() + 10
		if !waitNoted(acked, 5*time.Second, func() bool { return acks[i].Load() >= target }) {
			t.Fatalf("client %d of a surviving server stopped after the kill: %v", i, clients[i].err)
		}
	}
	// The group's count recovers once the victim's lease runs out.
	waitCount((servers-1)*perServer, 5*time.Second)

	close(stop)
	wg.Wait()
	for i, ty := range clients {
		switch {
		case i%servers == victim && ty.err == nil:
			t.Errorf("client %d of the killed server saw no error", i)
		case i%servers == victim && !strings.Contains(ty.err.Error(), "closed") && !strings.Contains(ty.err.Error(), "reset"):
			t.Errorf("client %d of the killed server: %v, want the connection closed", i, ty.err)
		case i%servers != victim && ty.err != nil:
			t.Errorf("client %d of a surviving server: %v", i, ty.err)
		}
	}
	final := redisGet(t, r, "kill")
	checkClients(t, final, clients, false)
	for i, p := range procs[:victim] {
		if code := p.Wait(t, 15*time.Second); code != 0 {
			t.Fatalf("server %d exit %d: %s", i, code, p.Stderr.String())
		}
		if out := p.Stdout.String(); out != finalLine(final) {
			t.Errorf("server %d printed %d bytes, not the final v (%d bytes)", i, len(out), len(final))
		}
	}
}

// Stop and restart Redis mid-run: clients get errors while it is away,
// never a wrong v; no acknowledged byte is lost; serving resumes by itself.
func TestStrsvrRedisRestart(t *testing.T) {
	r := redistest.New(t, "--appendfsync", "always")
	url := r.URL("restart")
	a, pa := startGroupServer(t, url, "--keep")
	b, pb := startGroupServer(t, url, "--keep")
	ports := []string{pa, pb}
	const workers = 6
	var (
		mu       sync.Mutex
		sessions []*typed // one per connection
		failures []error
		down     atomic.Bool
		afterUp  atomic.Int64             // acknowledged letters sent after Redis came back
		progress = make(chan struct{}, 1) // noted at each letter and failure
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := 0; ; {
				select {
				case <-stop:
					return
				default:
				}
				c, err := sharedstring.Dial(context.Background(), "127.0.0.1", ports[w%2], sharedstring.Options{Mode: sharedstring.Framed, DialTimeout: time.Second, ReplyTimeout: 10 * time.Second})
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					note(progress)
					// A client's pause before it tries again: the
					// pause is the point (no busy retry loop).
					time.Sleep(50 * time.Millisecond)
					continue
				}
				ty := &typed{}
				mu.Lock()
				sessions = append(sessions, ty)
				mu.Unlock()
				for {
					select {
					case <-stop:
						c.Close()
						return
					case <-time.After(3 * time.Millisecond):
					}
					k++
					if err := ty.sendLetter(c, byte('a'+(w+k)%26)); err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
						note(progress)
						c.Close()
						// As above: a client's pause before retrying.
						time.Sleep(50 * time.Millisecond)
						break
					}
					if !down.Load() {
						afterUp.Add(1)
						note(progress)
					}
				}
			}
		})
	}
	if !waitNoted(progress, 10*time.Second, func() bool { return afterUp.Load() >= 100 }) {
		t.Fatalf("no letters served before the outage (%d)", afterUp.Load())
	}
	down.Store(true)
	mu.Lock()
	failed := len(failures)
	mu.Unlock()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	// Redis stays away until the clients have felt it.
	if !waitNoted(progress, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failures) > failed
	}) {
		t.Fatal("no client saw an error while Redis was down")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	afterUp.Store(0)
	down.Store(false)
	if !waitNoted(progress, 15*time.Second, func() bool { return afterUp.Load() >= 100 }) {
		t.Fatalf("serving did not resume within 15s of Redis coming back (%d letters); server stderr: %s", afterUp.Load(), a.Stderr.String())
	}
	close(stop)
	wg.Wait()
	if len(failures) == 0 {
		t.Fatal("no client saw an error while Redis was down")
	}
	t.Logf("%d connections, %d errors, e.g. %v", len(sessions), len(failures), failures[0])

	final := redisGet(t, r, "restart")
	checkClients(t, final, sessions, false)
	for i, p := range []*testkit.Proc{a, b} {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if code := p.Wait(t, 15*time.Second); code != exitTerminated {
			t.Fatalf("server %d exit %d: %s", i, code, p.Stderr.String())
		}
		if out := p.Stdout.String(); out != finalLine(final) {
			t.Errorf("server %d printed %d bytes, not the final v (%d bytes)", i, len(out), len(final))
		}
		if errs := p.Stderr.String(); strings.Count(errs, "redis lost") != 1 || !strings.Contains(errs, "redis reachable again") {
			t.Errorf("server %d: want one 'redis lost' line and a 'reachable again' line:\n%s", i, errs)
		}
	}
}

// Redis unreachable at start: one clear line, exit 1; a bad URL is a usage
// error (exit 2).
func TestStrsvrRedisStartErrors(t *testing.T) {
	down := strconv.Itoa(testkit.StaticPort(t))
	url := "redis://127.0.0.1:" + down + "/0?key=v"
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"strsvr", "--store", url, "0"}, 1, "tcplab strsvr: redis: connect 127.0.0.1:" + down + ": connection refused\n"},
		{[]string{"strsvr", "--store", "redis://h/0?key=v&lease=x", "0"}, 2, "tcplab strsvr: invalid store URL redis://h/0?key=v&lease=x: lease must be a duration from 300ms to 1h, like 10s (see 'tcplab strsvr --help')\n"},
		{[]string{"strsvr", "--store", "http://h/", "0"}, 2, "tcplab strsvr: invalid store URL http://h/: scheme must be redis:// or rediss:// (see 'tcplab strsvr --help')\n"},
		{[]string{"strsvr", "--store", url, "--data", "v.log", "0"}, 2, "tcplab strsvr: --store and --data are two places for v: give one (see 'tcplab strsvr --help')\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			code, out, errOut := runCmd(t, "", tt.args...)
			if code != tt.code || errOut != tt.stderr || out != "" {
				t.Errorf("in-process: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", code, out, errOut, tt.code, tt.stderr)
			}
			p := testkit.Start(t, nil, testkit.Binary(t), tt.args...)
			if code := p.Wait(t, 10*time.Second); code != tt.code || p.Stderr.String() != tt.stderr {
				t.Errorf("binary: exit %d, stderr %q; want exit %d, stderr %q", code, p.Stderr.String(), tt.code, tt.stderr)
			}
		})
	}
}

// strclnt --watch on server A sees the letters typed on server B.
func TestStrsvrRedisWatchAcrossServers(t *testing.T) {
	r := redistest.New(t)
	_, pa := startGroupServer(t, r.URL("watch"), "--keep")
	_, pb := startGroupServer(t, r.URL("watch"), "--keep")
	c := dialFramed(t, pb)
	defer c.Close()
	// v is "x" before the watcher comes, so it prints "x" once it has
	// joined; then a letter typed on B must reach it through A.
	if v, err := c.Send([]byte("x")); err != nil || string(v) != "x" {
		t.Fatalf("letter on B: %q %v", v, err)
	}
	in, typing := io.Pipe()
	defer typing.Close()
	watcher := testkit.Start(t, in, testkit.Binary(t), "strclnt", "--watch", "127.0.0.1", pa)
	watcher.WaitFor(t, "x\n", 10*time.Second)
	if v, err := c.Send([]byte("y")); err != nil || string(v) != "xy" {
		t.Fatalf("letter on B: %q %v", v, err)
	}
	watcher.WaitFor(t, "xy\n", 10*time.Second)
}

// Two strsvr run in-process (as tests call run), sharing v through Redis.
func TestStrsvrRedisInProcess(t *testing.T) {
	r := redistest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type server struct {
		out, err testkit.SafeBuffer
		code     chan int
		port     string
	}
	listening := regexp.MustCompile(`strsvr listening" addr=\S*:(\d+)`)
	var servers []*server
	for range 2 {
		s := &server{code: make(chan int, 1)}
		go func() {
			s.code <- run(ctx, []string{"strsvr", "--keep", "--store", r.URL("inproc"), "0"}, strings.NewReader(""), &s.out, &s.err)
		}()
		if !testkit.WaitWritten(10*time.Second, nil, listening.MatchString, &s.err) {
			t.Fatalf("in-process strsvr not listening: %s", s.err.String())
		}
		s.port = listening.FindStringSubmatch(s.err.String())[1]
		servers = append(servers, s)
	}
	for i, want := range []string{"a", "ab", "abc"} {
		c, err := sharedstring.Dial(ctx, "127.0.0.1", servers[i%2].port, sharedstring.Options{Mode: sharedstring.Classic})
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Send([]byte{"abc"[i]})
		c.Close()
		if err != nil || string(v) != want {
			t.Fatalf("letter %d on server %d: %q %v, want %q", i, i%2, v, err, want)
		}
	}
	cancel()
	for i, s := range servers {
		select {
		case code := <-s.code:
			if code != exitInterrupted || s.out.String() != finalLine("abc") {
				t.Errorf("server %d: exit %d, stdout %q, stderr %q", i, code, s.out.String(), s.err.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("server %d did not stop", i)
		}
	}
}

// rediss:// through the binary: the server's certificate is verified
// against the roots Go trusts, here a test authority named by
// SSL_CERT_FILE; without it, strsvr refuses to start.
func TestStrsvrRedisTLS(t *testing.T) {
	r := redistest.NewTLS(t)
	start := func(env ...string) *testkit.Proc {
		t.Helper()
		// testkit.Start takes no environment: set it for the child via env(1).
		args := append(append([]string{}, env...), testkit.Binary(t), "strsvr", "--store", r.URL("tls"), "0")
		return testkit.Start(t, nil, "env", args...)
	}
	refused := start("SSL_CERT_FILE=/dev/null")
	if code := refused.Wait(t, 10*time.Second); code != 1 || !strings.Contains(refused.Stderr.String(), "certificate signed by unknown authority") {
		t.Fatalf("untrusted certificate: exit %d, stderr %q", code, refused.Stderr.String())
	}
	p := start("SSL_CERT_FILE=" + r.CAFile)
	p.WaitFor(t, "strsvr listening", 15*time.Second)
	port := regexp.MustCompile(`strsvr listening" addr=\S*:(\d+)`).FindStringSubmatch(p.Stderr.String())[1]
	c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Mode: sharedstring.Classic})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"t", "tl", "tls"} {
		v, err := c.Send([]byte{want[len(want)-1]})
		if err != nil || string(v) != want {
			t.Fatalf("%q %v, want %q", v, err, want)
		}
	}
	c.Close()
	if code := p.Wait(t, 10*time.Second); code != 0 || p.Stdout.String() != finalLine("tls") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, p.Stdout.String(), p.Stderr.String())
	}
}

// Servers without --keep ride out a Redis outage longer than their lease:
// they neither exit nor take their idle clients for gone, serve again when
// Redis is back, and print the final v when the clients leave.
func TestStrsvrRedisOutageWithIdleClients(t *testing.T) {
	t.Parallel() // mostly waiting out the outage
	r := redistest.New(t)
	url := r.URL("outage", "lease=1s")
	a, pa := startGroupServer(t, url)
	b, pb := startGroupServer(t, url)
	one, two := dialFramed(t, pa), dialFramed(t, pb)
	if v, err := one.Send([]byte("a")); err != nil || string(v) != "a" {
		t.Fatalf("before the outage: %q %v", v, err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the point: an outage longer than the lease
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	// The point: through every probe pause and the regrouping grace, the
	// window in which a server could wrongly take its idle clients for
	// gone and exit.
	time.Sleep(3 * time.Second)
	for i, p := range []*testkit.Proc{a, b} {
		select {
		case <-p.Done():
			t.Fatalf("server %d exited during or after the outage: stdout %q stderr %s", i, p.Stdout.String(), p.Stderr.String())
		default:
		}
	}
	if v, err := two.Send([]byte("b")); err != nil || string(v) != "ab" {
		t.Fatalf("after the outage: %q %v", v, err)
	}
	one.Close()
	two.Close()
	for i, p := range []*testkit.Proc{a, b} {
		if code := p.Wait(t, 15*time.Second); code != 0 || p.Stdout.String() != finalLine("ab") {
			t.Fatalf("server %d: exit %d, stdout %q, stderr %s", i, code, p.Stdout.String(), p.Stderr.String())
		}
	}
}

// The tutorial's own client (strclnt.py, Python 3) on two servers of one
// group: the bytes on the wire are the tutorial's, v is the group's.
func TestStrsvrRedisPythonClients(t *testing.T) {
	py := testkit.Python3(t)
	r := redistest.New(t)
	a, pa := startGroupServer(t, r.URL("py"), "--keep")
	b, pb := startGroupServer(t, r.URL("py"), "--keep")
	clients := []struct {
		port, typed, want string
	}{
		{pa, "a\nb\n\n", "enter a letter:a\nenter a letter:ab\nenter a letter:"},
		{pb, "c\n\n", "enter a letter:abc\nenter a letter:"},
		{pa, "d\n\n", "enter a letter:abcd\nenter a letter:"},
	}
	for i, c := range clients {
		p := testkit.Start(t, strings.NewReader(c.typed), py, "-u", testkit.Testdata("strclnt.py"), "127.0.0.1", c.port)
		if code := p.Wait(t, 15*time.Second); code != 0 || p.Stdout.String() != c.want {
			t.Fatalf("strclnt.py %d: exit %d, stdout %q (want %q), stderr %q", i, code, p.Stdout.String(), c.want, p.Stderr.String())
		}
	}
	for i, p := range []*testkit.Proc{a, b} {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if code := p.Wait(t, 15*time.Second); code != exitTerminated || p.Stdout.String() != finalLine("abcd") {
			t.Fatalf("server %d: exit %d, stdout %q, stderr %s", i, code, p.Stdout.String(), p.Stderr.String())
		}
	}
}

// note wakes a waitNoted on ch, without ever blocking the noter.
func note(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// waitNoted waits up to d until cond holds, looking again at each note on
// ch (buffered, so a note between a look and the wait is kept).
func waitNoted(ch <-chan struct{}, d time.Duration, cond func() bool) bool {
	timeout := time.After(d)
	for !cond() {
		select {
		case <-ch:
		case <-timeout:
			return cond()
		}
	}
	return true
}
