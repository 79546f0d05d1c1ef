package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func echo(_ context.Context, c net.Conn) { io.Copy(c, c) }

func TestServeManyClientsThenClose(t *testing.T) {
	ln := listen(t)
	s := &Server{Handler: HandlerFunc(echo)}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			msg := []byte{byte(i)}
			c.Write(msg)
			got := make([]byte, 1)
			if _, err := io.ReadFull(c, got); err != nil || got[0] != byte(i) {
				t.Errorf("client %d: %v %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
}

func TestShutdownWaitsForHandlersInFlight(t *testing.T) {
	ln := listen(t)
	release := make(chan struct{})
	var finished atomic.Bool
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		c.Write([]byte("x"))
		<-release
		finished.Store(true)
	})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.ReadFull(c, make([]byte, 1)) // the handler is running

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	// New connections are refused once shutdown began.
	if c2, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c2.Close()
		t.Fatal("dial succeeded after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the handler finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil || !finished.Load() {
		t.Fatalf("Shutdown = %v, finished %v", err, finished.Load())
	}
}

func TestShutdownDeadlineClosesStragglers(t *testing.T) {
	ln := listen(t)
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.Copy(io.Discard, c) // returns only when the conn is closed
	})}
	countConns(s)
	go s.Serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitActive(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if n := s.ActiveConns(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
}

func TestMaxConnsNeverExceeded(t *testing.T) {
	ln := listen(t)
	var active, peak atomic.Int32
	release := make(chan struct{})
	s := &Server{MaxConns: 2, MaxConnsPerAddr: -1, Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		n := active.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		active.Add(-1)
	})}
	countConns(s)
	go s.Serve(ln)
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			continue // over the cap: reset (there is no Refuse hook)
		}
		conns = append(conns, c)
	}
	waitActive(t, s, 2)
	close(release)
	for _, c := range conns {
		c.Close()
	}
	s.Shutdown(context.Background())
	if peak.Load() > 2 {
		t.Fatalf("peak concurrency %d > 2", peak.Load())
	}
}

func TestServeAfterCloseAndNilHandler(t *testing.T) {
	s := &Server{Handler: HandlerFunc(echo)}
	s.Close()
	if err := s.Serve(listen(t)); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
	if err := (&Server{}).Serve(listen(t)); err == nil {
		t.Fatal("nil handler accepted")
	}
}

// The lifecycle calls may come in any order and from any goroutine: Close
// racing a Serve that is just starting, Shutdown twice, Close while a
// Shutdown waits. Each must end with Serve returning ErrServerClosed, every
// handler returned and the listener closed.
func TestLifecycleRaces(t *testing.T) {
	type stop func(s *Server)
	shutdown := func(s *Server) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}
	cases := []struct {
		name  string
		stops []stop
	}{
		{"Close racing Serve", []stop{func(s *Server) { s.Close() }}},
		{"Shutdown racing Serve", []stop{shutdown}},
		{"Shutdown twice", []stop{shutdown, shutdown}},
		{"Close while Shutdown waits", []stop{shutdown, func(s *Server) { <-shuttingDown(s); s.Close() }}},
		{"Close twice", []stop{func(s *Server) { s.Close() }, func(s *Server) { s.Close() }}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 50 {
				ln := listen(t)
				// A handler that only ends when its connection is closed, so
				// Shutdown must wait and Close must end it.
				s := &Server{Handler: HandlerFunc(func(_ context.Context, c net.Conn) { io.Copy(io.Discard, c) })}
				served := make(chan error, 1)
				go func() { served <- s.Serve(ln) }()
				if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
					defer c.Close()
				}
				var wg sync.WaitGroup
				for _, f := range tc.stops {
					wg.Add(1)
					go func() { defer wg.Done(); f(s) }()
				}
				// The connected client keeps a lone Shutdown waiting (its
				// context is 5 s) until this Close ends the handler.
				closer := time.AfterFunc(20*time.Millisecond, func() { s.Close() })
				defer closer.Stop()
				wg.Wait()
				select {
				case err := <-served:
					if !errors.Is(err, ErrServerClosed) {
						t.Fatalf("Serve = %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Serve did not return")
				}
				if s.ActiveConns() != 0 {
					t.Fatalf("%d connections left", s.ActiveConns())
				}
				if _, err := ln.Accept(); err == nil {
					t.Fatal("listener still open")
				}
			}
		})
	}
}

// shuttingDown returns a channel closed once s has begun to stop (a
// Shutdown or Close has closed its listeners).
func shuttingDown(s *Server) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.done
}

// The cap is the server's, not each listener's: a server on two listeners
// (say IPv4 and IPv6) with MaxConns 1 still serves one client at a time.
func TestMaxConnsSpansListeners(t *testing.T) {
	release := make(chan struct{})
	var active, peak atomic.Int32
	s := &Server{MaxConns: 1, Handler: HandlerFunc(func(_ context.Context, c net.Conn) {
		n := active.Add(1)
		if n > peak.Load() {
			peak.Store(n)
		}
		<-release
		active.Add(-1)
	})}
	countConns(s)
	lns := []net.Listener{listen(t), listen(t)}
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { served <- s.Serve(ln) }()
	}
	first, err := net.Dial("tcp", lns[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitActive(t, s, 1)
	// The second client, on the other listener, is over the cap: its
	// connection ends (a reset) once the server has dealt with it.
	if second, err := net.Dial("tcp", lns[1].Addr().String()); err == nil {
		defer second.Close()
		second.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := second.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the client over the cap on the second listener: read %v, want its connection ended", err)
		}
	}
	got := s.ActiveConns()
	close(release)
	s.Close()
	for range lns {
		<-served
	}
	if got != 1 || peak.Load() != 1 {
		t.Fatalf("ActiveConns %d, peak %d with MaxConns 1 over two listeners", got, peak.Load())
	}
}

// A handler's panic costs its own connection only: the server logs it and
// serves the next client.
func TestHandlerPanicIsContained(t *testing.T) {
	ln := listen(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	var n atomic.Int32
	s := &Server{
		Logger: slog.New(slog.NewTextHandler(&lockedBuffer{mu: &mu, b: &logs}, nil)),
		Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
			if n.Add(1) == 1 {
				panic("boom")
			}
			echo(ctx, c)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() { s.Close(); <-served }()
	for i := range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("hi"))
		c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		c.Close()
		if want := []string{"", "hi"}[i]; string(got) != want {
			t.Fatalf("client %d got %q, want %q", i, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "handler panic") || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged: %q", logs.String())
	}
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
