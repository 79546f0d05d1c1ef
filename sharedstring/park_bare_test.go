package sharedstring_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
	"go.uber.org/goleak"
)

// Issue 22: a typist that has spoken and gone quiet costs no net.Conn
// either. A classic or framed client that is not a watcher is written to
// by its own turns only, so once it has been quiet for longer than the
// detach delay it is parked as a bare socket (server.ParkSocket); typing
// again, in any order, it gets exact replies, round after round; a
// watcher beside them, parked bare too (its frames written on the bare
// descriptor: TestQuietWatchersParkedBare), sees every change; and
// Close, or Shutdown with the
// clients leaving, reaches every one of them, leaving no goroutine
// behind. (Before: a typist that had spoken was parked by server.Park,
// never bare; the test failed with 0 of 6 typists parked bare.)
func TestQuietTypistParkedBare(t *testing.T) {
	for _, stop := range []string{"close", "shutdown"} {
		t.Run(stop, func(t *testing.T) { testQuietTypistParkedBare(t, stop) })
	}
}

func testQuietTypistParkedBare(t *testing.T, stop string) {
	before := goleak.IgnoreCurrent()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	const each = 3
	st := store.NewMemoryFrom([]byte("v:"))
	srv := &sharedstring.Server{Store: st, Keep: true}
	s := &server.Server{Handler: srv, MaxConns: 100, MaxConnsPerAddr: -1, Grace: -1,
		// Parked soon after each answer; made bare 1 to 2 s later.
		ParkAfter: 10 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	stopped := false
	defer func() {
		if !stopped {
			s.Close()
			<-served
		}
		st.Close()
		goleak.VerifyNone(t, before)
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	v := []byte("v:")
	w := dial(t, port, sharedstring.Options{Mode: sharedstring.Framed, Watch: true})
	nextV(t, w, v)
	// typists[i] types one letter and checks the reply: v after it.
	var typists []func(letter byte)
	var raws []net.Conn
	for range each {
		c := dialRaw(t, port)
		raws = append(raws, c)
		typists = append(typists, func(letter byte) {
			t.Helper()
			if _, err := c.Write([]byte{letter}); err != nil {
				t.Fatal(err)
			}
			v = append(v, letter)
			readExactly(t, c, v)
		})
	}
	var framed []*sharedstring.Client
	for range each {
		c := dial(t, port, sharedstring.Options{Mode: sharedstring.Framed})
		framed = append(framed, c)
		typists = append(typists, func(letter byte) {
			t.Helper()
			got, err := c.Send([]byte{letter})
			v = append(v, letter)
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("framed reply %q, %v; want %q", got, err, v)
			}
		})
	}
	// waitBare waits until every typist, and the watcher, is parked bare:
	// the server's own state, which gives no event.
	waitBare := func() {
		t.Helper()
		if !testkit.Poll(30*time.Second, func() bool { return s.ParkedBare() == len(typists)+1 }) {
			t.Fatalf("%d connections parked bare, want the %d typists' and the watcher's (seed %d)", s.ParkedBare(), len(typists), seed)
		}
	}
	for _, i := range rng.Perm(len(typists)) {
		typists[i]('a' + byte(i))
		nextV(t, w, v)
	}
	for round := range 3 {
		waitBare()
		for _, i := range rng.Perm(len(typists)) {
			typists[i]('a' + byte(round+i))
			nextV(t, w, v) // the watcher, bare, sees every change
		}
	}
	waitBare()
	waitClients(t, st, int64(len(typists)+1))

	stopped = true
	switch stop {
	case "close":
		// Close reaches the bare sockets: every client is told, by an end
		// of file, and counted out.
		s.Close()
		for _, c := range raws {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n > 0 || err != io.EOF {
				t.Errorf("a classic typist read %d bytes, %v after Close, want the end of file", n, err)
			}
		}
		for _, c := range framed {
			if _, err := c.Send([]byte("z")); err == nil {
				t.Error("a framed typist was answered after Close")
			}
		}
	case "shutdown":
		// Shutdown waits for them: a bare typist still types and is
		// answered; then the clients leave and Shutdown returns.
		shut := make(chan error, 1)
		go func() { shut <- s.Shutdown(context.Background()) }()
		for _, i := range rng.Perm(len(typists)) {
			typists[i]('A' + byte(i))
		}
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned (%v) with its clients connected", err)
		default:
		}
		for _, c := range framed {
			c.Close()
		}
		for _, c := range raws {
			c.Close()
		}
		w.Close()
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	waitClients(t, st, 0)
	if stop == "close" {
		if _, _, err := w.Next(); err == nil {
			t.Error("the watcher read a frame after Close, want the end")
		}
	}
}
