package sharedstring_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// startServer serves st with Keep (so that clients may come and go) on
// 127.0.0.1:0 (TCP, and UDP discovery on the same port) until the test
// ends, and returns the server and its port.
func startServer(t *testing.T, st store.Store, configure func(*sharedstring.Server)) (*sharedstring.Server, string) {
	t.Helper()
	return startCapped(t, st, &server.Server{}, configure)
}

// startCapped is startServer with the server.Server's caps set in caps.
func startCapped(t *testing.T, st store.Store, caps *server.Server, configure func(*sharedstring.Server)) (*sharedstring.Server, string) {
	t.Helper()
	srv := &sharedstring.Server{Store: st, Keep: true}
	if configure != nil {
		configure(srv)
	}
	port, _ := runCapped(t, srv, caps)
	return srv, port
}

// runResult is what Server.Run returned.
type runResult struct {
	v   []byte
	err error
}

// runServer runs srv (Run) on 127.0.0.1:0 until it ends by itself or the
// test ends, and returns its port and where Run's result arrives.
func runServer(t *testing.T, srv *sharedstring.Server) (string, <-chan runResult) {
	t.Helper()
	return runCapped(t, srv, &server.Server{})
}

// runCapped is runServer with the server.Server's caps set in caps.
func runCapped(t *testing.T, srv *sharedstring.Server, caps *server.Server) (string, <-chan runResult) {
	t.Helper()
	ln, pc := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan runResult, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		v, err := srv.Run(ctx, caps, ln, pc)
		res <- runResult{v, err}
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
		srv.Store.Close()
	})
	return portOf(ln), res
}

// portOf is the port ln listens on.
func portOf(ln net.Listener) string { return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }

// listenPair listens on TCP 127.0.0.1:0 and on UDP on the same port.
func listenPair(t *testing.T) (net.Listener, net.PacketConn) {
	t.Helper()
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return ln, pc
		}
		ln.Close()
		if try == 10 {
			t.Fatal(err)
		}
	}
}

// waitClients waits, on the store's own change signal, until the store
// counts n clients.
func waitClients(t *testing.T, st store.Store, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	changes, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		got, err := st.Clients(ctx)
		if err == nil && got == n {
			return
		}
		select {
		case <-changes:
		case <-ctx.Done():
			t.Fatalf("%d clients (%v), want %d", got, err, n)
		}
	}
}

func dialRaw(t *testing.T, port string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dial(t *testing.T, port string, opts sharedstring.Options) *sharedstring.Client {
	t.Helper()
	c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readExactly reads len(want) bytes, compares them, and checks that
// nothing more arrives for a moment.
func readExactly(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", len(want), err, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var one [1]byte
	if n, _ := c.Read(one[:]); n > 0 {
		t.Fatalf("extra byte %q after the replies", one[:n])
	}
}

// classicReplies is what the tutorial's server sends for letters appended to
// v = before: v after each byte, back to back.
func classicReplies(before, letters []byte) []byte {
	var out []byte
	v := bytes.Clone(before)
	for _, b := range letters {
		v = append(v, b)
		out = append(out, v...)
	}
	return out
}

func TestClassicBytesAreTheTutorials(t *testing.T) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(255 - i) // starts with 0xFF, the hello's first byte
	}
	cases := []struct {
		name   string
		writes [][]byte
	}{
		{"one letter", [][]byte{[]byte("a")}},
		{"three letters in one write", [][]byte{[]byte("abc")}},
		{"letters one by one", [][]byte{[]byte("a"), []byte("b"), []byte("c")}},
		{"NUL and newline", [][]byte{{0, '\n', 0}}},
		{"every byte value", [][]byte{allBytes}},
		{"0xFF alone", [][]byte{{0xff}}},
		{"a hello cut short", [][]byte{[]byte("\xfftcplab-str"), []byte("!")}},
		{"a hello with bad flags", [][]byte{append(sharedstring.Hello(0)[:sharedstring.HelloLen-1], 0x80)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, port := startServer(t, store.NewMemory(), nil)
			c := dialRaw(t, port)
			var v []byte
			for _, w := range tc.writes {
				c.Write(w)
				readExactly(t, c, classicReplies(v, w))
				v = append(v, w...)
			}
		})
	}
}

// The tutorial's session, with the tcplab client in each mode.
func TestTutorialSession(t *testing.T) {
	for _, mode := range []sharedstring.Mode{sharedstring.Auto, sharedstring.Classic} {
		t.Run(fmt.Sprint("mode ", mode), func(t *testing.T) {
			srv := &sharedstring.Server{Store: store.NewMemory()}
			port, res := runServer(t, srv)
			one := dial(t, port, sharedstring.Options{Mode: mode})
			two := dial(t, port, sharedstring.Options{Mode: mode})
			if one.Framed() != (mode == sharedstring.Auto) {
				t.Fatalf("framed = %v in mode %v", one.Framed(), mode)
			}
			steps := []struct {
				c      *sharedstring.Client
				letter string
				want   string
			}{
				{one, "a", "a"}, {one, "b", "ab"}, {one, "c", "abc"},
				{two, "u", "abcu"}, {two, "u", "abcuu"}, {two, "v", "abcuuv"}, {two, "v", "abcuuvv"},
				{one, "d", "abcuuvvd"},
				{two, "w", "abcuuvvdw"}, {two, "w", "abcuuvvdww"},
				{one, "e", "abcuuvvdwwe"},
			}
			for _, s := range steps {
				v, err := s.c.Send([]byte(s.letter))
				if err != nil || string(v) != s.want {
					t.Fatalf("sent %s: got %q %v, want %q", s.letter, v, err, s.want)
				}
			}
			one.Close()
			waitClients(t, srv.Store, 1)
			select {
			case <-srv.Done():
				t.Fatal("done with a client still connected")
			default:
			}
			two.Close()
			r := <-res
			if r.err != nil || string(r.v) != "abcuuvvdwwe" {
				t.Fatalf("Run returned %q, %v; want the final v", r.v, r.err)
			}
		})
	}
}

// 200 clients × 100 letters at once: v has every letter once, each client's
// letters in its own order, every reply a prefix of the final v.
func TestManyConcurrentClients(t *testing.T) {
	clients, each := 200, 100
	if testing.Short() {
		clients = 50
	}
	st := store.NewMemory()
	_, port := startServer(t, st, nil)
	type sent struct {
		letter byte
		at     int
	}
	logs := make([][]sent, clients)
	lasts := make([][]byte, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			prev := 0
			for k := range each {
				letter := byte('A' + (i+k)%58)
				v, err := c.Send([]byte{letter})
				if err != nil {
					t.Error(err)
					return
				}
				if len(v) <= prev || v[len(v)-1] != letter {
					t.Errorf("client %d: reply of %d bytes after %d does not end with its letter", i, len(v), prev)
					return
				}
				prev = len(v)
				logs[i] = append(logs[i], sent{letter, len(v) - 1})
				lasts[i] = v
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	final, _ := st.Value(context.Background())
	if len(final) != clients*each {
		t.Fatalf("final v has %d bytes, want %d", len(final), clients*each)
	}
	owner := make([]int, len(final))
	for i := range owner {
		owner[i] = -1
	}
	for i, log := range logs {
		if !bytes.HasPrefix(final, lasts[i]) {
			t.Fatalf("client %d's last reply is not a prefix of the final v", i)
		}
		for k, s := range log {
			if owner[s.at] != -1 {
				t.Fatalf("position %d claimed by clients %d and %d", s.at, owner[s.at], i)
			}
			owner[s.at] = i
			if final[s.at] != s.letter {
				t.Fatalf("client %d letter %d not at its position", i, k)
			}
			if k > 0 && log[k-1].at >= s.at {
				t.Fatalf("client %d's letters out of order", i)
			}
		}
	}
}

// Classic clients among themselves, with the careful classic reader.
func TestConcurrentClassicClients(t *testing.T) {
	st := store.NewMemory()
	_, port := startServer(t, st, nil)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			c, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Mode: sharedstring.Classic})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for range 20 {
				v, err := c.Send([]byte{byte('a' + i)})
				if err != nil || v[len(v)-1] != byte('a'+i) {
					t.Errorf("client %d: %q %v", i, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v, _ := st.Value(context.Background()); len(v) != 200 {
		t.Fatalf("v has %d bytes, want 200", len(v))
	}
}

func TestFramedValueArrivesWhole(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16) // 10 MiB
	_, port := startServer(t, store.NewMemoryFrom(big), nil)
	c := dial(t, port, sharedstring.Options{})
	if !c.Framed() {
		t.Fatal("not framed against a tcplab server")
	}
	v, err := c.Send([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(big)+1 || !bytes.HasPrefix(v, big) || v[len(v)-1] != 'x' {
		t.Fatalf("got %d bytes, want %d", len(v), len(big)+1)
	}
	// Three letters in one line: three replies, the last is returned.
	v, err = c.Send([]byte("yz!"))
	if err != nil || len(v) != len(big)+4 || string(v[len(big):]) != "xyz!" {
		t.Fatalf("after yz!: %d bytes, %v", len(v), err)
	}
	// A classic client of the same server still gets the raw bytes.
	raw := dialRaw(t, port)
	raw.Write([]byte("q"))
	want := append(bytes.Clone(v), 'q')
	readExactly(t, raw, want)
	// A client whose limit is below v refuses it instead of growing.
	small := dial(t, port, sharedstring.Options{MaxValue: 1 << 20})
	if _, err := small.Send([]byte("s")); !errors.Is(err, sharedstring.ErrProtocol) {
		t.Fatalf("client with a 1 MiB limit: %v", err)
	}
}

func TestWatch(t *testing.T) {
	_, port := startServer(t, store.NewMemoryFrom([]byte("start:")), nil)
	w := dial(t, port, sharedstring.Options{Watch: true})
	kind, v, err := w.Next()
	if err != nil || kind != sharedstring.KindUpdate || string(v) != "start:" {
		t.Fatalf("first watch frame: %c %q %v", kind, v, err)
	}
	other := dial(t, port, sharedstring.Options{})
	for _, l := range "xyz" {
		other.Send([]byte{byte(l)})
	}
	for string(v) != "start:xyz" {
		if kind, v, err = w.Next(); err != nil || kind != sharedstring.KindUpdate {
			t.Fatalf("watch: %c %q %v", kind, v, err)
		}
	}
	// The watcher's own letters come back as replies.
	w.Write([]byte("!"))
	for {
		kind, v, err = w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if kind == sharedstring.KindReply {
			break
		}
	}
	if string(v) != "start:xyz!" {
		t.Fatalf("watcher's reply %q", v)
	}
}

// WaitFor holds every client until that many have come, then serves
// them all; Run ends with the final v when they have left. In a synctest
// bubble over pipes, so "nothing yet" is checked once every goroutine is
// blocked, not after a guessed while.
func TestWaitForGathersClientsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &sharedstring.Server{Store: store.NewMemory(), WaitFor: 2}
		defer srv.Store.Close()
		ln := newPipeListener()
		res := make(chan runResult, 1)
		go func() {
			v, err := srv.Run(t.Context(), &server.Server{}, ln, nil)
			res <- runResult{v, err}
		}()
		read := func(c net.Conn, want string) {
			t.Helper()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Fatalf("reply %q %v, want %q", got, err, want)
			}
		}
		first := ln.dial()
		go first.Write([]byte("a")) // a pipe's write waits for the server's read
		replied := make(chan string, 1)
		go func() {
			var b [8]byte
			n, _ := first.Read(b[:])
			replied <- string(b[:n])
		}()
		synctest.Wait()
		select {
		case r := <-replied:
			t.Fatalf("served %q before the second client came", r)
		default:
		}
		second := ln.dial()
		if r := <-replied; r != "a" {
			t.Fatalf("first client's reply %q, want \"a\"", r)
		}
		go second.Write([]byte("b"))
		read(second, "ab")
		first.Close()
		second.Close()
		if r := <-res; r.err != nil || string(r.v) != "ab" {
			t.Fatalf("Run returned %q, %v; want the final v", r.v, r.err)
		}
	})
}

func TestFaults(t *testing.T) {
	t.Run("clients vanish mid-reply", func(t *testing.T) {
		st := store.NewMemoryFrom(bytes.Repeat([]byte("v"), 1<<20))
		srv, port := startServer(t, st, nil)
		for range 20 {
			c := dialRaw(t, port)
			c.Write(bytes.Repeat([]byte("x"), 64)) // 64 MiB of replies due
			c.(*net.TCPConn).SetLinger(0)          // reset, not close
			c.Close()
		}
		ok := dial(t, port, sharedstring.Options{})
		if _, err := ok.Send([]byte("k")); err != nil {
			t.Fatal(err)
		}
		ok.Close()
		waitClients(t, srv.Store, 0)
		if n, _ := st.Clients(context.Background()); n != 0 {
			t.Fatalf("%d clients still counted", n)
		}
	})
	t.Run("a client that never reads is dropped", func(t *testing.T) {
		st := store.NewMemoryFrom(bytes.Repeat([]byte("v"), 1<<20))
		srv, port := startServer(t, st, func(s *sharedstring.Server) { s.WriteTimeout = 200 * time.Millisecond })
		stuck := dialRaw(t, port)
		stuck.Write(bytes.Repeat([]byte("s"), 100)) // 100 MiB of replies, never read
		other := dial(t, port, sharedstring.Options{})
		if _, err := other.Send([]byte("o")); err != nil {
			t.Fatal(err)
		}
		other.Close()
		waitClients(t, srv.Store, 0)
	})
	t.Run("a client that stopped reading is reset, not closed behind its queue", func(t *testing.T) {
		st := store.NewMemoryFrom(bytes.Repeat([]byte("v"), 1<<20))
		srv, port := startServer(t, st, func(s *sharedstring.Server) { s.WriteTimeout = 200 * time.Millisecond })
		stuck := dialRaw(t, port)
		stuck.Write(bytes.Repeat([]byte("s"), 100)) // 100 MiB of replies, never read
		waitClients(t, srv.Store, 1)
		waitClients(t, srv.Store, 0)
		// Now read. After a reset the client finds at most what its own
		// receive buffer held, then ECONNRESET; after an orderly close the
		// server's orphaned socket would go on sending what it had queued
		// (megabytes), then a FIN: io.EOF.
		stuck.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := io.Copy(io.Discard, stuck)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("after the server gave up: read %d bytes, then %v; want a reset", n, err)
		}
	})
	t.Run("v is bounded", func(t *testing.T) {
		srv, port := startServer(t, store.NewMemory(), func(s *sharedstring.Server) { s.MaxValue = 10 })
		c := dialRaw(t, port)
		c.Write([]byte("0123456789abcdef"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatal(err)
		}
		waitClients(t, srv.Store, 0)
	})
	t.Run("idle clients are dropped", func(t *testing.T) {
		// The fake clock of a synctest bubble: the read timeout passes
		// at once, and exactly.
		synctest.Test(t, func(t *testing.T) {
			srv := &sharedstring.Server{Store: store.NewMemory(), ReadTimeout: 100 * time.Millisecond}
			client, conn := net.Pipe()
			defer client.Close()
			start := time.Now()
			srv.ServeConn(t.Context(), conn)
			if idle := time.Since(start); idle != 100*time.Millisecond {
				t.Fatalf("a silent client was dropped after %s, want the read timeout, 100ms", idle)
			}
		})
	})
}

func TestDiscovery(t *testing.T) {
	_, port := startServer(t, store.NewMemory(), nil)
	p, _ := strconv.Atoi(port)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}
	if !sharedstring.Probe(context.Background(), addr, time.Second) {
		t.Fatal("no answer from a tcplab server")
	}
	// Junk datagrams are ignored, and the server still answers probes.
	u, _ := net.Dial("udp", "127.0.0.1:"+port)
	u.Write([]byte("hello?"))
	u.Write(make([]byte, 24))
	u.Close()
	if !sharedstring.Probe(context.Background(), addr, time.Second) {
		t.Fatal("no answer after junk")
	}
	// Nothing on UDP: a quick no (port unreachable on loopback).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	start := time.Now()
	if sharedstring.Probe(context.Background(), ln.Addr(), 5*time.Second) {
		t.Fatal("answer from a plain TCP listener")
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("probe waited for its timeout despite the port being unreachable")
	}
	// A framed client refuses a server that does not speak framed mode.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	// (The echo comes at once, so Dial, which reads an early answer to
	// the hello, already sees it.)
	c, err := sharedstring.Dial(context.Background(), "127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		sharedstring.Options{Mode: sharedstring.Framed, ReplyTimeout: time.Second})
	if err == nil {
		defer c.Close()
		_, err = c.Send([]byte("a"))
	}
	if err == nil || !strings.Contains(err.Error(), "did not accept framed mode") {
		t.Fatalf("framed hello accepted by an echo server: %v", err)
	}
}

// ReadFrame never panics, never grows the copy beyond the limit and never
// reports more of v than it holds.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("h\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("r\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01a"))
	f.Add([]byte("w\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("e\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04full"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		var have []byte
		for {
			_, n, v, err := sharedstring.ReadFrame(br, have, 1024)
			if err != nil {
				return
			}
			if len(v) > 1024 || n > len(v) || !bytes.HasPrefix(v, have) {
				t.Fatalf("n %d, copy %d", n, len(v))
			}
			have = v
		}
	})
}

// gatedStore holds every append until n have arrived (or a few seconds
// have passed), so that n clients' appends race as closely as they can.
type gatedStore struct {
	*store.Memory
	n       int64
	arrived atomic.Int64
	all     chan struct{}
	once    sync.Once
}

func (g *gatedStore) gate() {
	if g.arrived.Add(1) == g.n {
		g.once.Do(func() { close(g.all) })
	}
	select {
	case <-g.all:
	case <-time.After(5 * time.Second):
	}
}

func (g *gatedStore) Append(ctx context.Context, p []byte) ([]byte, error) {
	g.gate()
	return g.Memory.Append(ctx, p)
}

func (g *gatedStore) AppendCapped(ctx context.Context, p []byte, limit int) ([]byte, error) {
	g.gate()
	return g.Memory.AppendCapped(ctx, p, limit)
}

// MaxValue holds exactly even when clients append at the same moment: the
// limit is checked inside the store's append, not before it, where every
// racing client would pass the check against the same old v.
func TestMaxValueHoldsUnderConcurrentAppends(t *testing.T) {
	const clients, each, limit = 4, 60, 100
	st := &gatedStore{Memory: store.NewMemory(), n: clients, all: make(chan struct{})}
	srv, port := startServer(t, st, func(s *sharedstring.Server) { s.MaxValue = limit })
	var wg sync.WaitGroup
	for i := range clients {
		c := dialRaw(t, port)
		wg.Go(func() {
			c.Write(bytes.Repeat([]byte{byte('a' + i)}, each))
			c.(*net.TCPConn).CloseWrite() // so a served client is closed once answered
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, c) // replies, or the close of a refused client
		})
	}
	wg.Wait()
	waitClients(t, srv.Store, 0)
	v, _ := st.Value(context.Background())
	if len(v) > limit {
		t.Fatalf("len(v) = %d with MaxValue %d", len(v), limit)
	}
	if len(v) == 0 {
		t.Fatal("no client's letters were taken")
	}
}

// Watchers have a cap of their own: one over it is told so in an 'e'
// frame and closed, while letters and the watchers within the cap go on.
func TestWatcherCap(t *testing.T) {
	srv, port := startServer(t, store.NewMemoryFrom([]byte("v:")), func(s *sharedstring.Server) { s.MaxWatchers = 2 })
	var ws []*sharedstring.Client
	for range 2 {
		w := dial(t, port, sharedstring.Options{Watch: true})
		if kind, v, err := w.Next(); err != nil || kind != sharedstring.KindUpdate || string(v) != "v:" {
			t.Fatalf("watcher within the cap: %c %q %v", kind, v, err)
		}
		ws = append(ws, w)
	}
	// Told at once: Dial reads the 'e' frame that answers the hello.
	_, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Watch: true})
	if err == nil || !strings.Contains(err.Error(), "too many watchers") || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("watcher over the cap: %v, want a refusal naming the cap", err)
	}
	waitClients(t, srv.Store, 2)
	// A client that is not a watcher is served as ever.
	c := dial(t, port, sharedstring.Options{})
	if v, err := c.Send([]byte("x")); err != nil || string(v) != "v:x" {
		t.Fatalf("letter beside the watchers: %q %v", v, err)
	}
	c.Close()
	// A slot freed by a watcher that leaves is taken by the next one.
	ws[0].Close()
	waitClients(t, srv.Store, 1)
	again := dial(t, port, sharedstring.Options{Watch: true})
	if kind, v, err := again.Next(); err != nil || kind != sharedstring.KindUpdate || string(v) != "v:x" {
		t.Fatalf("watcher after one left: %c %q %v", kind, v, err)
	}
}

// By default watchers get a quarter of MaxConns: with 8 slots, the third
// watcher is refused, so clients that type always find a slot.
func TestWatcherCapDefaultsToAQuarterOfMaxConns(t *testing.T) {
	_, port := startCapped(t, store.NewMemoryFrom([]byte("v:")), &server.Server{MaxConns: 8, MaxConnsPerAddr: -1}, nil)
	for range 2 {
		w := dial(t, port, sharedstring.Options{Watch: true})
		if kind, _, err := w.Next(); err != nil || kind != sharedstring.KindUpdate {
			t.Fatalf("watcher within a quarter of the slots: %c %v", kind, err)
		}
	}
	if _, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{Watch: true}); err == nil || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("third watcher with 8 slots: %v, want a refusal at 2", err)
	}
}

// With no read timeout at all, a classic client whose first letter is
// 0xFF (which could begin a hello) and which then pauses is not dropped
// when the hello's one-second wait ends.
func TestNoReadTimeoutOutlivesTheHelloWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &sharedstring.Server{Store: store.NewMemory(), ReadTimeout: -1} // none
		client, conn := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.ServeConn(t.Context(), conn)
			conn.Close()
		}()
		read := func(want string) {
			t.Helper()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(client, got); err != nil || string(got) != want {
				t.Fatalf("reply: %q %v, want %q (dropped?)", got, err, want)
			}
		}
		client.Write([]byte{0xFF})
		read("\xff")
		// The pause is the point: far past the hello's wait, on the
		// bubble's fake clock.
		time.Sleep(sharedstring.HelloWait + time.Hour)
		client.Write([]byte("a"))
		read("\xffa")
		client.Close()
		<-served
	})
}
