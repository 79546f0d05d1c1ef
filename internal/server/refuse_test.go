package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// blocking is a handler that holds its connection until release closes or
// the server is closed.
func blocking(release <-chan struct{}) Handler {
	return HandlerFunc(func(ctx context.Context, c net.Conn) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
}

// startFull serves s on a loopback listener and fills it with held
// connections from 127.0.0.1 until ActiveConns reaches held; it returns
// the address.
func startFull(t *testing.T, s *Server, held int) string {
	t.Helper()
	countConns(s)
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	for range held {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	waitActive(t, s, held)
	return ln.Addr().String()
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	c, err := dialFromErr(src, addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialFromErr(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// isReset reports whether a connection over the cap was reset at once: the
// reset can beat connect's own return on loopback, so it may come from
// the dial or from the first read.
func resetAtOnce(t *testing.T, addr string) {
	t.Helper()
	start := time.Now()
	c, err := dialFromErr("127.0.0.1", addr)
	if err == nil {
		defer c.Close()
		var got string
		got, _, err = readAnswer(t, c, 5*time.Second)
		if got != "" {
			t.Fatalf("over the cap: got %q, want a reset", got)
		}
	}
	if took := time.Since(start); !errors.Is(err, syscall.ECONNRESET) || took > RefuseTimeout/2 {
		t.Fatalf("over the cap: %v after %s; want an immediate reset", err, took)
	}
}

// readAnswer reads everything until the server closes, within limit.
func readAnswer(t *testing.T, c net.Conn, limit time.Duration) (string, time.Duration, error) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	got, err := io.ReadAll(c)
	return string(got), time.Since(start), err
}

// A client that finds every slot taken is told so at once, in one line,
// instead of waiting in the listen backlog until a slot frees (before this
// it waited for ever: the server stopped accepting at the cap).
func TestFullServerRefusesAtOnce(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := &Server{MaxConns: 2, MaxConnsPerAddr: -1, Refuse: RefuseLine, Handler: blocking(release)}
	addr := startFull(t, s, 2)
	c := dialFrom(t, "127.0.0.1", addr)
	got, took, err := readAnswer(t, c, 5*time.Second)
	want := "busy: max number of clients reached (2); try again later\n"
	if err != nil || got != want {
		t.Fatalf("over the cap: %q, %v after %s; want %q", got, err, took, want)
	}
	// At once: well within the refusal's own time bound.
	if took > RefuseTimeout/2 {
		t.Fatalf("refusal took %s", took)
	}
	if line, ok := IsBusyLine([]byte(got)); !ok || !strings.HasPrefix(line, BusyPrefix) {
		t.Fatalf("IsBusyLine(%q) = %q, %v", got, line, ok)
	}
	if n := s.ActiveConns(); n != 2 {
		t.Fatalf("ActiveConns = %d after a refusal", n)
	}
}

// With no Refuse hook, a connection over the cap is reset at once.
func TestFullServerWithoutHookResets(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := &Server{MaxConns: 1, Handler: blocking(release)}
	addr := startFull(t, s, 1)
	resetAtOnce(t, addr)
}

// Idle connections from one address take at most that address's share of
// the slots (a quarter by default): the client from another address is
// served, the next one from the hogging address is refused, naming the
// per-address cap.
func TestIdleConnsFromOneAddressCannotShutOutAnother(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var served atomic.Int32
	s := &Server{MaxConns: 8, Refuse: RefuseLine, Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		served.Add(1)
		c.Write([]byte("served\n"))
		io.Copy(io.Discard, c) // until the client leaves or Close

	})}
	addr := startFull(t, s, 0)
	var hog []net.Conn
	for range 2 { // the default share: 8/4
		hog = append(hog, dialFrom(t, "127.0.0.2", addr))
	}
	waitActive(t, s, 2)
	over := dialFrom(t, "127.0.0.2", addr)
	got, _, err := readAnswer(t, over, 5*time.Second)
	if want := "busy: max number of connections from one address reached (2); try again later\n"; err != nil || got != want {
		t.Fatalf("third from 127.0.0.2: %q, %v; want %q", got, err, want)
	}
	for i := range 2 { // 127.0.0.1's own share
		c := dialFrom(t, "127.0.0.1", addr)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 7)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "served\n" {
			t.Fatalf("client %d from 127.0.0.1 beside 127.0.0.2's idle ones: %q, %v", i, buf, err)
		}
	}
	// A slot 127.0.0.2 frees is its own again.
	hog[0].Close()
	waitActive(t, s, 3)
	again := dialFrom(t, "127.0.0.2", addr)
	again.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 7)
	if _, err := io.ReadFull(again, buf); err != nil || string(buf) != "served\n" {
		t.Fatalf("127.0.0.2 after one of its connections left: %q, %v", buf, err)
	}
}

// Refusals cannot themselves be piled up: while maxRefusing are in
// progress (here a hook held until the test ends), the next connection
// over the cap is reset at once, and none of them takes a slot.
func TestRefusalsAreBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var started atomic.Int32
	refusing := make(chan struct{}, 2*maxRefusing) // one send per refusal begun
	s := &Server{MaxConns: 1, MaxConnsPerAddr: -1, Handler: blocking(release),
		Refuse: func(c net.Conn, _ string) {
			started.Add(1)
			select {
			case refusing <- struct{}{}:
			default: // more than the buffer: started says so below
			}
			// Held by the test, not by the clock: a hook that read until
			// its RefuseTimeout (1 s) let the first refusals end before
			// a loaded machine had dialled the 65th.
			<-release
		}}
	addr := startFull(t, s, 1)
	for range maxRefusing {
		dialFrom(t, "127.0.0.1", addr)
	}
	timeout := time.After(10 * time.Second)
	for i := range maxRefusing {
		select {
		case <-refusing:
		case <-timeout:
			t.Fatalf("%d refusals begun within 10 s, want %d", i, maxRefusing)
		}
	}
	if n := started.Load(); n != maxRefusing {
		t.Fatalf("%d refusals in progress, want %d", n, maxRefusing)
	}
	resetAtOnce(t, addr)
	if n := s.ActiveConns(); n != 1 {
		t.Fatalf("ActiveConns = %d while refusing", n)
	}
}

// The default per-address share, checked as a value.
func TestMaxConnsPerAddrDefault(t *testing.T) {
	for _, tc := range []struct{ max, per, want int }{
		{0, 0, DefaultMaxConns / 4},
		{1000, 0, 250},
		{3, 0, 1},
		{1, 0, 1},
		{1000, 7, 7},
		{1000, -1, 0}, // no per-address cap
	} {
		s := &Server{MaxConns: tc.max, MaxConnsPerAddr: tc.per}
		s.init()
		if s.maxPer != tc.want {
			t.Errorf("MaxConns %d, MaxConnsPerAddr %d: per-address cap %d, want %d", tc.max, tc.per, s.maxPer, tc.want)
		}
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 2}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, "fe80::/64"},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, "invalid Prefix"},
	} {
		if got := addrKey(tc.addr).String(); got != tc.want {
			t.Errorf("addrKey(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if addrKey(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1")}) == addrKey(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1")}) {
		t.Error("two /64s share a key")
	}
}

func TestIsBusyLine(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{BusyLine("max number of clients reached (3)"), true},
		{"busy: x\n", true},
		{"busy: x", false}, // no newline: cut short, or not a line
		{"busy: x\nmore\n", false},
		{"abcabcabc", false},
		{"busy: " + strings.Repeat("x", MaxBusyLine) + "\n", false},
	} {
		if _, ok := IsBusyLine([]byte(tc.in)); ok != tc.ok {
			t.Errorf("IsBusyLine(%q) = %v", tc.in, ok)
		}
	}
	if l := BusyLine(strings.Repeat("x", 1000)); len(l) != MaxBusyLine || !strings.HasSuffix(l, "\n") {
		t.Errorf("long reason: %d bytes", len(l))
	}
}

// BusyHold passes an ordinary answer on chunk by chunk as soon as it cannot
// be a refusal, and turns a refusal line, however it was cut, into the line.
func TestBusyHold(t *testing.T) {
	join := func(cs [][]byte) string { return string(bytesJoin(cs)) }
	var h BusyHold
	if out := h.Add([]byte("abc")); join(out) != "abc" {
		t.Fatalf("ordinary first chunk held: %q", join(out))
	}
	if out := h.Add([]byte("busy: x\n")); join(out) != "busy: x\n" {
		t.Fatalf("later chunk held: %q", join(out))
	}
	if _, refused, rest := h.End(); refused || rest != nil {
		t.Fatalf("End after passing on: %v %q", refused, rest)
	}

	line := BusyLine("max number of clients reached (2)")
	var b BusyHold
	for i := 0; i < len(line); i += 5 {
		if out := b.Add([]byte(line[i:min(i+5, len(line))])); out != nil {
			t.Fatalf("refusal passed on at %d: %q", i, join(out))
		}
	}
	if got, refused, _ := b.End(); !refused || got+"\n" != line {
		t.Fatalf("End = %q, %v", got, refused)
	}

	// Begins like a refusal, then is not one: everything comes out, in
	// its chunks.
	var c BusyHold
	c.Add([]byte("bu"))
	out := c.Add([]byte("sy: x\nmore"))
	if len(out) != 2 || join(out) != "busy: x\nmore" {
		t.Fatalf("not a refusal after all: %q in %d chunks", join(out), len(out))
	}
	// Cut short (no newline) at the end: not a refusal, passed on by End.
	var d BusyHold
	d.Add([]byte("busy: x"))
	if _, refused, rest := d.End(); refused || join(rest) != "busy: x" {
		t.Fatalf("unterminated: %v %q", refused, join(rest))
	}
}

func bytesJoin(cs [][]byte) []byte {
	var b []byte
	for _, c := range cs {
		b = append(b, c...)
	}
	return b
}

// A full server says so in its log at the first refusal, and then at most
// every refusalLogEvery with a count, never once per connection.
func TestRefusalsAreLoggedNotFlooded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var mu sync.Mutex
	var logs bytes.Buffer
	s := &Server{MaxConns: 1, MaxConnsPerAddr: -1, Refuse: RefuseLine, Handler: blocking(release),
		Logger: slog.New(slog.NewTextHandler(&lockedBuffer{mu: &mu, b: &logs}, nil))}
	addr := startFull(t, s, 1)
	for range 5 {
		c := dialFrom(t, "127.0.0.1", addr)
		if got, _, err := readAnswer(t, c, 5*time.Second); err != nil || !strings.HasPrefix(got, BusyPrefix) {
			t.Fatalf("over the cap: %q, %v", got, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "refusing connections"); n != 1 || !strings.Contains(logs.String(), `reason="max number of clients reached (1)"`) {
		t.Fatalf("%d log lines about refusals: %q", n, logs.String())
	}
}
