package status

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
)

// startService serves svc on 127.0.0.1:0 with internal/server and returns
// the address; the server is closed when the test ends.
func startService(t *testing.T, svc *Service, maxConns int) string {
	t.Helper()
	_, addr := startServer(t, svc, maxConns)
	return addr
}

// startServer is startService that also returns the server's connection
// counts, which a test can wait on.
func startServer(t *testing.T, svc *Service, maxConns int) (*connCounts, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Handler: svc, MaxConns: maxConns}
	counts := countConns(srv)
	if maxConns > 0 {
		// A quarter of the slots per address, not svr's 64 (Configure):
		// the tests' clients all come from 127.0.0.1.
		srv.MaxConnsPerAddr = server.QuarterOf(maxConns)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return counts, ln.Addr().String()
}

// connCounts are a server's connections, told by its ConnState hook:
// served, how many it has taken; closed, how many of them have ended
// (their slots free).
type connCounts struct{ served, closed testkit.Gauge }

// countConns sets srv's ConnState hook; call it before srv serves.
func countConns(srv *server.Server) *connCounts {
	c := new(connCounts)
	srv.ConnState = func(_ net.Conn, state server.ConnState) {
		switch state {
		case server.StateNew:
			c.served.Add(1)
		case server.StateClosed:
			c.closed.Add(1)
		}
	}
	return c
}

// waitServed waits until n connections have been served in all.
func (c *connCounts) waitServed(t *testing.T, n int, what string) {
	t.Helper()
	if !c.served.Wait(15*time.Second, func(m int) bool { return m >= n }) {
		t.Fatalf("%s (%d served, want %d)", what, c.served.Load(), n)
	}
}

// waitClosed waits until n of them have ended.
func (c *connCounts) waitClosed(t *testing.T, n int, what string) {
	t.Helper()
	if !c.closed.Wait(15*time.Second, func(m int) bool { return m >= n }) {
		t.Fatalf("%s (%d closed, want %d)", what, c.closed.Load(), n)
	}
}

// ask sends raw and returns everything the server sent before closing.
func ask(t *testing.T, addr string, raw []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if len(raw) > 0 {
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
	}
	out, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	return string(out)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func newService(t *testing.T) *Service {
	return &Service{Allow: mustAllow(t, "w", "ps"), Runner: &Runner{}, QuietGap: 50 * time.Millisecond, ReadTimeout: 2 * time.Second}
}

func checkServing(t *testing.T, addr string) {
	t.Helper()
	if out := ask(t, addr, []byte("w")); !strings.Contains(out, "load average") {
		t.Fatalf("server no longer serves w: %q", out)
	}
}

// A Service's zero fields are its defaults: with only an allow-list it
// serves, and the zero Service refuses every name.
func TestServiceZeroFieldsAreDefaults(t *testing.T) {
	if out := ask(t, startService(t, &Service{Allow: mustAllow(t, "w")}, 0), []byte("w")); !strings.Contains(out, "load average") {
		t.Errorf("Service with only Allow: %q", out)
	}
	if out := ask(t, startService(t, &Service{}, 0), []byte("w")); out != "unknown command \"w\"; allowed: \n" {
		t.Errorf("zero Service: %q", out)
	}
}

func TestServiceAnswersWAndPS(t *testing.T) {
	addr := startService(t, newService(t), 0)
	for _, tc := range []struct{ raw, want string }{
		{"w", "load average"}, {"ps", "COMMAND"}, {"ps\n", "COMMAND"}, {"w\r\n", "USER"},
	} {
		out := ask(t, addr, []byte(tc.raw))
		if !strings.Contains(out, tc.want) || !strings.HasSuffix(out, "\n") {
			t.Errorf("%q: %q", tc.raw, out)
		}
	}
	// Whole output: ps's last process (the tutorial's rl[:-1] would drop it).
	out := ask(t, addr, []byte("ps"))
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || !strings.Contains(lines[len(lines)-1], " ") {
		t.Errorf("ps answer ends %q", lines[len(lines)-1])
	}
}

// Hostile input: each gets the one-line refusal or a clean close, and the
// server keeps serving.
func TestServiceHostileInput(t *testing.T) {
	addr := startService(t, newService(t), 0)
	refusal := func(name string) string { return "unknown command " + name + "; allowed: ps, w\n" }
	junk := bytes.Repeat([]byte("junk"), 10<<20/4)
	for _, tc := range []struct {
		name string
		raw  []byte
		want string // exact answer; "" means a clean close with nothing sent
	}{
		{"rm", []byte("rm"), refusal(`"rm"`)},
		{"sh", []byte("sh"), refusal(`"sh"`)},
		{"rm -rf", []byte("rm -rf /\n"), refusal(`"rm -rf /"`)},
		{"w;id", []byte("w;id"), refusal(`"w;id"`)},
		{"ps -ef", []byte("ps -ef"), refusal(`"ps -ef"`)},
		{"$(id)", []byte("$(id)"), refusal(`"$(id)"`)},
		{"backticks", []byte("`id`"), refusal("\"`id`\"")},
		{"NUL bytes", []byte("p\x00s\x00"), refusal(`"p\x00s\x00"`)},
		{"only NUL", []byte{0}, refusal(`"\x00"`)},
		{"newline only", []byte("\n"), refusal(`""`)},
		{"10 MB of junk", junk, "request too long (over 64 bytes); allowed: ps, w\n"},
		{"connect and close", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.raw == nil {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				checkServing(t, addr)
				return
			}
			var out string
			if len(tc.raw) > 1<<20 {
				out = askBig(t, addr, tc.raw)
			} else {
				out = ask(t, addr, tc.raw)
			}
			if out != tc.want {
				t.Errorf("answer %q, want %q", out, tc.want)
			}
			checkServing(t, addr)
		})
	}
}

// askBig writes a large request while reading, as a flooding client would;
// the write may fail once the server closes.
func askBig(t *testing.T, addr string, raw []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go c.Write(raw)
	var out bytes.Buffer
	_, err = io.Copy(&out, c)
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	return out.String()
}

// A client sending one byte a second is answered after the quiet gap
// following its first byte, not held for its whole request.
func TestServiceSlowClient(t *testing.T) {
	addr := startService(t, newService(t), 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, b := range []byte("x;id") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second): // the point: a client sending a byte a second
			}
		}
	}()
	out, _ := io.ReadAll(c)
	close(stop)
	wg.Wait()
	if string(out) != "unknown command \"x\"; allowed: ps, w\n" {
		t.Fatalf("slow client got %q", out)
	}
	checkServing(t, addr)
}

// A client that never sends is dropped at the read deadline.
func TestServiceSilentClientDropped(t *testing.T) {
	svc := newService(t)
	svc.ReadTimeout = 300 * time.Millisecond
	addr := startService(t, svc, 0)
	if out := ask(t, addr, nil); out != "" {
		t.Fatalf("silent client got %q", out)
	}
}

func TestServiceConcurrentClients(t *testing.T) {
	var runs atomic.Int64
	svc := newService(t)
	// Not newService's 2 s: with 500 clients under -race on a loaded
	// machine, a client's request (or svr's read of it) can come later
	// than that after the accept, and svr then closes and the late
	// request is answered with a reset (2 of 500 clients, once in 45
	// runs at a load average near 30). This test is about concurrency,
	// not the timeout.
	svc.ReadTimeout = 30 * time.Second
	svc.Runner.OnRun = func(_ string, shared bool) {
		if !shared {
			runs.Add(1)
		}
	}
	// 500 clients from one address: within its share (a quarter) of 2000.
	addr := startService(t, svc, 2000)
	const clients = 500
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"w", "ps"}[i%2]
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			c.Write([]byte(name))
			out, err := io.ReadAll(c)
			if err != nil || !strings.Contains(string(out), map[string]string{"w": "load average", "ps": "COMMAND"}[name]) {
				errs <- name + ": " + string(out[:min(len(out), 80)]) + errString(err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for e := range errs {
		if n < 5 {
			t.Error(e)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d clients failed", n, clients)
	}
	// Coalescing: 500 requests, a handful of forks (one per command per
	// freshness window).
	if n := runs.Load(); n > 20 {
		t.Errorf("%d requests ran the commands %d times", clients, n)
	}
	checkServing(t, addr)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " " + err.Error()
}

// The bytes of a request never reach a shell: a name with shell syntax is
// refused and the command it hides never runs.
func TestServiceNothingReachesAShell(t *testing.T) {
	svc := newService(t)
	svc.Allow = mustAllow(t, BuiltinNames()...)
	addr := startService(t, svc, 0)
	marker := filepath.Join(t.TempDir(), "x")
	for _, raw := range []string{"w;touch " + marker, "ps;touch " + marker, "$(touch " + marker + ")", "`touch " + marker + "`", "w|touch " + marker, "w\n;touch " + marker} {
		out := ask(t, addr, []byte(raw))
		if len(out) == 0 {
			t.Errorf("%q: no answer", raw)
		}
	}
	// No wait: an answer is sent after its command has exited, and a
	// shell reading the request would have run touch before that.
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a request made a shell run touch")
	}
}

func TestServiceAllowNets(t *testing.T) {
	svc := newService(t)
	svc.Nets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	addr := startService(t, svc, 0)
	if out := ask(t, addr, []byte("w")); out != "" {
		t.Fatalf("a client outside --allow got %q", out)
	}
	svc2 := newService(t)
	svc2.Nets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	checkServing(t, startService(t, svc2, 0))
}

func TestServiceRateLimit(t *testing.T) {
	svc := newService(t)
	svc.Limiter = NewClientLimiter(0.001, 3)
	addr := startService(t, svc, 0)
	for i := range 3 {
		if out := ask(t, addr, []byte("w")); !strings.Contains(out, "load average") {
			t.Fatalf("request %d within the burst: %q", i, out)
		}
	}
	if out := ask(t, addr, []byte("w")); out != "rate limit exceeded; try again later\n" {
		t.Fatalf("request over the limit got %q", out)
	}
}

// Each address has its own burst, refilled at the rate: in a bubble the
// refill's timing is exact.
func TestClientLimiterRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewClientLimiter(10, 3)
		a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
		allowed := func(addr netip.Addr, n int) int {
			got := 0
			for range n {
				if l.Allow(addr) {
					got++
				}
			}
			return got
		}
		if got := allowed(a, 4); got != 3 {
			t.Fatalf("%d of 4 requests at once allowed, want the burst of 3", got)
		}
		if got := allowed(b, 3); got != 3 {
			t.Fatalf("another address: %d of 3 allowed", got)
		}
		time.Sleep(99 * time.Millisecond) // fake time: short of 1/rate
		if l.Allow(a) {
			t.Fatal("allowed before a request's worth was refilled")
		}
		time.Sleep(time.Millisecond) // fake time: 1/rate since the burst
		if got := allowed(a, 2); got != 1 {
			t.Fatalf("after 1/rate: %d of 2 allowed, want 1", got)
		}
		time.Sleep(time.Hour) // fake time: long idle
		if got := allowed(a, 4); got != 3 {
			t.Fatalf("after a long pause: %d of 4 allowed, want the burst of 3", got)
		}
	})
}

// The request rate limit counts an IPv6 client by its /64, as every
// per-address rule does: 50 addresses of one /64 × 40 requests were all
// answered, where one address gets its burst. IPv4 counts by address.
func TestClientLimiterCountsAnIPv6Slash64AsOneAddress(t *testing.T) {
	l := NewClientLimiter(0.001, 40)
	allowed := 0
	for i := range 50 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, byte(i >> 8), byte(i), 0x12, 0x34})
		for range 40 {
			if l.Allow(a) {
				allowed++
			}
		}
	}
	if allowed != 40 {
		t.Errorf("50 addresses of one /64 × 40 requests: %d allowed, want the burst of 40", allowed)
	}
	if !l.Allow(netip.MustParseAddr("2001:db8:0:2::1")) {
		t.Error("another /64 shares the first one's burst")
	}
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "::ffff:192.0.2.3"} {
		if !l.Allow(netip.MustParseAddr(a)) {
			t.Errorf("IPv4 %s shares another address's burst", a)
		}
	}
}

func TestClientLimiterBounded(t *testing.T) {
	l := NewClientLimiter(1, 1)
	for i := range maxTracked + 10 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(a)
	}
	if n := l.tracked(); n > maxTracked {
		t.Fatalf("tracking %d addresses", n)
	}
}

func TestServiceMetrics(t *testing.T) {
	m := NewMetrics()
	svc := newService(t)
	svc.Metrics = m
	svc.Runner.OnRun = m.ObserveRun
	conns, addr := startServer(t, svc, 0)
	ask(t, addr, []byte("w"))
	ask(t, addr, []byte("w"))
	ask(t, addr, []byte("rm"))
	// The handler records a request after the client has its answer and
	// closes: wait for the handlers to end.
	conns.waitClosed(t, 3, "the handlers never ended")
	want := []string{
		`tcplab_svr_requests_total{command="w",result="ok"} 2`,
		`tcplab_svr_requests_total{command="other",result="unknown"} 1`,
		`tcplab_svr_command_runs_total{command="w",kind="run"} 1`,
		`tcplab_svr_command_runs_total{command="w",kind="coalesced"} 1`,
		`tcplab_svr_open_connections 0`,
		`tcplab_svr_request_duration_seconds_count 3`,
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, w := range want {
		if !strings.Contains(rec.Body.String(), w) {
			t.Errorf("metrics lack %q", w)
		}
	}
}

// Shutdown lets a request in flight finish.
func TestServiceGracefulShutdown(t *testing.T) {
	svc := newService(t)
	svc.Allow = mustAllow(t, "w")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Handler: svc}
	conns := countConns(srv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("w")) // request in flight
	conns.waitServed(t, 1, "the request was never served")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	out, _ := io.ReadAll(c)
	if !strings.Contains(string(out), "load average") {
		t.Fatalf("request in flight got %q", out)
	}
	if err := <-done; !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// A client that asks and then does not read is dropped at the write
// deadline, even when the answer is far larger than the socket buffers.
func TestServiceNonReadingClientDropped(t *testing.T) {
	big := &Command{name: "big", native: func() ([]byte, error) {
		return bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 512<<10), nil // 32 MiB
	}}
	svc := newService(t)
	svc.Allow = &AllowList{cmds: []*Command{big}}
	svc.Runner = &Runner{MaxOutput: 64 << 20}
	svc.WriteTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Handler: svc}
	conns := countConns(srv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	c.Write([]byte("big"))
	conns.waitServed(t, 1, "the request was never served")
	conns.waitClosed(t, 1, "a client that does not read is still being served")
	// Dropped with a reset: the rest of the 32 MiB is not left queued.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read ended with %v, want a reset", err)
	}
}

func TestRunnerWholeOutputOverCap(t *testing.T) {
	c := &Command{name: "json", whole: true, native: func() ([]byte, error) { return bytes.Repeat([]byte("x"), 2000), nil }}
	if _, err := (&Runner{MaxOutput: 1000}).Output(context.Background(), c); err == nil || !strings.Contains(err.Error(), "over the 1000-byte cap") {
		t.Fatalf("err %v", err)
	}
}
