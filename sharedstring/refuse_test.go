package sharedstring_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

func dialRawFrom(t *testing.T, src, port string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A strclnt that finds every slot taken is told so by Dial, at once, in
// the 'e' frame that answers its hello; before, it waited in the listen
// backlog and its first letter timed out after 30 s.
func TestFullServerRefusesAFramedClientAtOnce(t *testing.T) {
	srv, port := startCapped(t, store.NewMemory(), &server.Server{MaxConns: 2, MaxConnsPerAddr: -1}, nil)
	dial(t, port, sharedstring.Options{})
	dial(t, port, sharedstring.Options{})
	waitClients(t, srv.Store, 2)
	start := time.Now()
	_, err := sharedstring.Dial(context.Background(), "127.0.0.1", port, sharedstring.Options{})
	want := "refused the connection: busy: max number of clients reached (2); try again later"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("Dial at a full server: %v, want ...%q", err, want)
	}
	if took := time.Since(start); took > server.RefuseTimeout {
		t.Fatalf("refusal took %s", took)
	}
}

// A classic client (the tutorial's strclnt.py, or --classic) gets the line
// "busy: ..." within the refusal's time bound, then the close; Client in
// classic mode reports it as a refusal when it sends its first letter.
func TestFullServerRefusesAClassicClient(t *testing.T) {
	srv, port := startCapped(t, store.NewMemory(), &server.Server{MaxConns: 1, MaxConnsPerAddr: -1}, nil)
	dialRaw(t, port).Write([]byte("a"))
	waitClients(t, srv.Store, 1)
	want := "busy: max number of clients reached (1); try again later\n"

	// Silent, as strclnt.py at its prompt.
	c := dialRaw(t, port)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	got, err := io.ReadAll(c)
	if string(got) != want || err != nil || time.Since(start) > 2*server.RefuseTimeout {
		t.Fatalf("silent classic client: %q, %v after %s; want %q", got, err, time.Since(start), want)
	}
	// Typing at once.
	c = dialRaw(t, port)
	c.Write([]byte("xyz"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); string(got) != want || err != nil {
		t.Fatalf("classic client that typed: %q, %v", got, err)
	}

	cl := dial(t, port, sharedstring.Options{Mode: sharedstring.Classic})
	if _, err := cl.Send([]byte("q")); err == nil || !strings.HasSuffix(err.Error(), "refused the connection: "+strings.TrimSuffix(want, "\n")) {
		t.Fatalf("classic Client at a full server: %v", err)
	}
}

// Idle connections from one address (127.0.0.2) take at most its share of
// the slots, a quarter by default: the next from there is refused, and a
// client from 127.0.0.1 is served. Before, 1,000 idle sockets from one
// address held every slot of a default strsvr.
func TestIdleConnsFromOneAddressCannotShutOutStrclnt(t *testing.T) {
	srv, port := startCapped(t, store.NewMemoryFrom([]byte("v:")), &server.Server{MaxConns: 8}, nil)
	for range 2 {
		dialRawFrom(t, "127.0.0.2", port)
	}
	waitClients(t, srv.Store, 2)
	over := dialRawFrom(t, "127.0.0.2", port)
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, _ := io.ReadAll(over); !strings.HasPrefix(string(got), "busy: max number of connections from one address reached (2)") {
		t.Fatalf("third idle connection from 127.0.0.2: %q", got)
	}
	c := dial(t, port, sharedstring.Options{})
	if v, err := c.Send([]byte("a")); err != nil || string(v) != "v:a" {
		t.Fatalf("strclnt from 127.0.0.1 beside 127.0.0.2's idle connections: %q, %v", v, err)
	}
}

// A classic reply is told from a refusal by its end, not by its start: v
// is anyone's typing, so it may read "busy: ...; try again later", and a
// client whose letter is '\n' then gets back exactly a busy line. Sent
// whole (it ends with the letter) and followed by the server's close, it
// is the reply, as strclnt.py would print it; before, Client reported it
// as a refusal.
func TestClassicReplyThatReadsLikeARefusalIsNotOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	v := "busy: max number of clients reached (1000); try again later"
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err == nil {
			c.Write(append([]byte(v), b...)) // v, then the letter appended
		}
	}()
	defer func() { <-served }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cl := dial(t, port, sharedstring.Options{Mode: sharedstring.Classic})
	got, err := cl.Send([]byte("\n"))
	if err != nil || string(got) != v+"\n" {
		t.Fatalf("classic reply %q then close: %q, %v; want the reply", v+"\n", got, err)
	}
}
