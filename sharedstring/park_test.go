package sharedstring_test

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
	"go.uber.org/goleak"
)

// Issue 22: a silent client costs what it costs Redis. Classic clients
// that never sent a byte, classic clients silent after a letter, framed
// clients and watchers of a v that does not change: once silent, none of
// them holds a goroutine (nor so a stack or a read buffer), and every one
// is served again, correctly, as soon as it speaks; the server stops with
// them parked and leaves no goroutine behind. (Before: one
// goroutine, blocked in Read on a 4 KiB buffer, per connection.)
func TestSilentClientsHoldNoGoroutine(t *testing.T) {
	// Run last of the cleanups: the server stops with watchers and
	// classic clients still parked, and leaves no goroutine behind.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	const each = 25
	st := store.NewMemoryFrom([]byte("v:"))
	_, port := startCapped(t, st, &server.Server{MaxConns: 10 * each, MaxConnsPerAddr: -1}, func(s *sharedstring.Server) {
		s.MaxWatchers = 2 * each
	})
	base := runtime.NumGoroutine()
	var never, lettered []net.Conn
	for range each {
		never = append(never, dialRaw(t, port))
	}
	v := []byte("v:")
	for range each {
		c := dialRaw(t, port)
		c.Write([]byte("a"))
		v = append(v, 'a')
		readExactly(t, c, v)
		lettered = append(lettered, c)
	}
	var framed, watchers []*sharedstring.Client
	for range each {
		c := dial(t, port, sharedstring.Options{})
		got, err := c.Send([]byte("b"))
		v = append(v, 'b')
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("framed reply %q, %v; want %q", got, err, v)
		}
		framed = append(framed, c)
	}
	for range each {
		w := dial(t, port, sharedstring.Options{Watch: true})
		if _, got, err := w.Next(); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("watcher's first frame %q, %v; want %q", got, err, v)
		}
		watchers = append(watchers, w)
	}
	waitClients(t, st, 4*each)
	// What the server holds is its own business: a goroutine ends with
	// no event (sharedstring.Server does not pass on internal/server's
	// ConnState hook, and StateParked would not say the goroutine is
	// gone). Look until its goroutines are few, for as long as a silent
	// client may keep one (server.DefaultParkAfter) and then some.
	if !testkit.Poll(20*time.Second, func() bool { return runtime.NumGoroutine() < base+each/2 }) {
		t.Fatalf("%d goroutines for %d silent connections (%d before they came)", runtime.NumGoroutine()-base, 4*each, base)
	}

	// Each speaks again and is answered as if it had never been away.
	for i, c := range never {
		c.Write([]byte("c"))
		v = append(v, 'c')
		readExactly(t, c, v)
		if i == 0 { // a watcher sees the change
			for _, w := range watchers {
				nextV(t, w, v)
			}
		}
	}
	for _, c := range lettered {
		c.Write([]byte("d"))
		v = append(v, 'd')
		readExactly(t, c, v)
	}
	for _, c := range framed {
		got, err := c.Send([]byte("e"))
		v = append(v, 'e')
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("framed reply %q, %v; want %q", got, err, v)
		}
	}
	for _, w := range watchers {
		nextV(t, w, v)
	}
	// And each that leaves is counted out.
	for _, c := range never {
		c.Close()
	}
	for _, c := range framed {
		c.Close()
	}
	waitClients(t, st, 2*each)
}

// nextV reads w's frames until it shows want.
func nextV(t *testing.T, w *sharedstring.Client, want []byte) {
	t.Helper()
	for {
		_, got, err := w.Next()
		if err != nil {
			t.Fatalf("watcher: %v, want %q", err, want)
		}
		if bytes.Equal(got, want) {
			return
		}
		if len(got) > len(want) {
			t.Fatalf("watcher shown %q, beyond %q", got, want)
		}
	}
}
