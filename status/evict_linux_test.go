package status

import (
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// The service says when a request is complete (server.Busy): at a full
// server that makes room (EvictWaiting), a client whose answer is still
// being taken is never closed for a newcomer; a silent one is, though it
// came later. Without the call, the client being answered was the one
// waiting longest, and was cut off.
func TestServiceRequestCompleteIsNotEvicted(t *testing.T) {
	al, err := NewAllowListWith([]string{"ps"}, AllowOptions{Args: true, Native: true})
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Allow: al, Runner: &Runner{}, WriteTimeout: 20 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Handler: svc, MaxConns: 2, MaxConnsPerAddr: -1, EvictWaiting: true}
	conns := countConns(srv)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	// A client that takes its answer slowly (a receive buffer far
	// smaller than ps aux's answer): the server waits for it.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		return nil
	}}
	asking, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer asking.Close()
	asking.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(asking, "ps")
	first := make([]byte, 1)
	if _, err := io.ReadFull(asking, first); err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	conns.waitServed(t, 2, "the silent client was never served")
	newcomer, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer newcomer.Close()
	conns.waitClosed(t, 1, "the newcomer made no room")
	if n := srv.Evicted(); n != 1 {
		t.Fatalf("a connection closed, %d evicted: want the silent one evicted", n)
	}
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("the silent client was not the one closed")
	}
	rest, err := io.ReadAll(asking)
	if err != nil || !strings.HasPrefix(string(first)+string(rest), "USER") {
		t.Fatalf("the client being answered: %v after %q", err, string(first)+string(rest[:min(len(rest), 40)]))
	}
}

// A client that sends half a request and stalls is answered (the pause
// ends its name) and then lingered on for a second, for its late bytes;
// while lingering it must not hold its slot against a newcomer, or
// connections sending one byte each, at the rate limit, keep a full
// server full of lingerers and every real client is refused. Before, the
// lingering connections counted as busy: the newcomer here got "busy:".
func TestServiceLingeringConnectionsMakeRoom(t *testing.T) {
	al, err := NewAllowListWith([]string{"w"}, AllowOptions{Native: true})
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Allow: al, Runner: &Runner{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const slots = 4
	srv := &server.Server{Handler: svc, MaxConns: slots, MaxConnsPerAddr: -1, EvictWaiting: true, Refuse: server.RefuseLine}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	for i := range slots {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "x") // half a name, then nothing
		line := make([]byte, 7)
		if _, err := io.ReadFull(c, line); err != nil || string(line) != "unknown" {
			t.Fatalf("half request %d: %q, %v", i+1, line, err)
		}
		// Answered: the server now lingers for its late bytes.
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "w")
	answer, err := io.ReadAll(c)
	if err != nil || strings.HasPrefix(string(answer), "busy") || !strings.Contains(string(answer), "load average") {
		t.Fatalf("a real request at a server full of lingerers: %q, %v", answer, err)
	}
}
