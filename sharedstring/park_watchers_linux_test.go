package sharedstring_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// Issue 22, watchers: a watcher of a v that does not change is written to
// only when v changes, so once quiet past the detach delay it is parked
// as a bare socket like a quiet typist (server.ParkSocket), its frames
// written on the bare descriptor (server.Write): it costs no net.Conn.
// Every watcher, bare, still sees every change, round after round, a big
// one too; Close reaches them all. (Before: a watcher kept its net.Conn,
// parked with server.Park; the test failed with 0 of the 5 watchers
// parked bare, 1 connection bare, the typist's.)
func TestQuietWatchersParkedBare(t *testing.T) {
	before := goleak.IgnoreCurrent()
	const each = 5
	st := store.NewMemoryFrom([]byte("v:"))
	srv := &sharedstring.Server{Store: st, Keep: true, MaxWatchers: 2 * each}
	s := &server.Server{Handler: srv, MaxConns: 100, MaxConnsPerAddr: -1, Grace: -1, ParkAfter: 10 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	v := []byte("v:")
	var ws []*sharedstring.Client
	for range each {
		w := dial(t, port, sharedstring.Options{Mode: sharedstring.Framed, Watch: true})
		nextV(t, w, v)
		ws = append(ws, w)
	}
	typist := dial(t, port, sharedstring.Options{Mode: sharedstring.Framed})
	for round := range 3 {
		// The server's own state, which gives no event: 1 to 2 s after
		// they parked.
		if !testkit.Poll(30*time.Second, func() bool { return s.ParkedBare() == each+1 }) {
			t.Fatalf("round %d: %d connections parked bare, want the %d watchers' and the typist's", round, s.ParkedBare(), each)
		}
		letters := []byte{'a' + byte(round)}
		if round == 2 {
			letters = bytes.Repeat([]byte("big"), 100_000) // frames written in parts
		}
		got, err := typist.Send(letters)
		v = append(v, letters...)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("round %d: the typist's reply is %d bytes, %v; want %d", round, len(got), err, len(v))
		}
		for _, w := range ws {
			nextV(t, w, v)
		}
	}
	s.Close()
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	for i, w := range ws {
		if _, _, err := w.Next(); err == nil {
			t.Errorf("watcher %d read a frame after Close, want the end", i)
		}
	}
	st.Close()
	goleak.VerifyNone(t, before)
}

// rawWatcher is a framed watcher with a small receive buffer, read by a
// goroutine of its own that checks every v it is shown against the one
// before (each holds the one before: the frames only append), pausing
// between frames as a slow reader does.
type rawWatcher struct {
	c    *net.TCPConn
	done chan struct{} // closed when its reads end
	mu   sync.Mutex
	n    int           // the length of the v it is shown
	v    []byte        // that v (and what it has read beyond)
	told string        // an 'e' frame's reason
	err  error         // why its reads ended
	hold chan struct{} // while not nil, its reads wait for it to close
}

// stall has w read nothing until the function it returns is called.
func (w *rawWatcher) stall() (resume func()) {
	hold := make(chan struct{})
	w.mu.Lock()
	w.hold = hold
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.hold = nil
		w.mu.Unlock()
		close(hold)
	}
}

func dialWatcher(t *testing.T, port string, slow time.Duration) *rawWatcher {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1024) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w := &rawWatcher{c: c.(*net.TCPConn), done: make(chan struct{})}
	if _, err := c.Write(sharedstring.Hello(sharedstring.FlagWatch)); err != nil {
		t.Fatal(err)
	}
	go w.read(slow)
	return w
}

func (w *rawWatcher) read(slow time.Duration) {
	defer close(w.done)
	br := bufio.NewReaderSize(w.c, 512)
	var have []byte
	for {
		w.mu.Lock()
		hold := w.hold
		w.mu.Unlock()
		if hold != nil {
			<-hold
		}
		kind, n, got, err := sharedstring.ReadFrame(br, have, sharedstring.DefaultMaxValue)
		w.mu.Lock()
		switch {
		case err != nil:
			w.err = err
		case kind == sharedstring.KindError:
			w.told = string(got[len(have):])
			got = have
		case kind == sharedstring.KindUpdate && n < w.n:
			w.err = fmt.Errorf("shown %d bytes of v after %d", n, w.n)
		case kind == sharedstring.KindUpdate:
			w.n = n
		}
		w.v, have = got, got
		end := w.err != nil || w.told != ""
		w.mu.Unlock()
		if end {
			return
		}
		time.Sleep(slow) // the pause is the point: a slow reader
	}
}

// shown is the v w is shown, the reason it was told it ended, and why
// its reads ended (nil while they go on).
func (w *rawWatcher) shown() ([]byte, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.v[:w.n], w.told, w.err
}

// Checker (issue 22, watchers parked bare): random interleavings of two
// typists' letters (a few or thousands at once), watchers joining,
// leaving, resetting their connection (bare or not), reading slowly
// through small receive buffers (so writes to bare sockets find the
// socket buffer full), outages of the store shorter and longer than
// WatchOutage, and pauses long enough for every quiet connection to be
// parked bare; then Close, or Shutdown with the clients leaving. Every v
// a watcher is shown holds the one before and is a prefix of the final
// v; every watcher still connected ends current (shows the final v) or
// told (an 'e' frame); the process holds the descriptors it held before,
// and no goroutine is left behind. TCPLAB_WATCHBARE_SEED=N replays a
// seed.
func TestWatchersParkedBareChecker(t *testing.T) {
	testkit.RunSeeds(t, "TCPLAB_WATCHBARE_SEED", 2, checkWatchersBare)
}

func checkWatchersBare(t *testing.T, seed uint64) {
	before := goleak.IgnoreCurrent()
	fds := testkit.OpenFDs(t)
	rng := rand.New(rand.NewPCG(seed, 22))
	st := newOutageStore("v:")
	const outage = 500 * time.Millisecond
	srv := &sharedstring.Server{Store: st, Keep: true, MaxWatchers: 40, WatchOutage: outage}
	s := &server.Server{Handler: srv, MaxConns: 100, MaxConnsPerAddr: -1, Grace: -1, ParkAfter: 10 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	framed := dial(t, port, sharedstring.Options{Mode: sharedstring.Framed})
	classic := dialRaw(t, port)
	v := []byte("v:")
	typed := 0 // the classic typist's replies: v after each of its letters
	typeLetters := func(k int) {
		t.Helper()
		letters := bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, k)
		if rng.IntN(2) == 0 {
			got, err := framed.Send(letters)
			v = append(v, letters...)
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("seed %d: the framed typist's reply is %d bytes, %v; want %d", seed, len(got), err, len(v))
			}
			return
		}
		letters = letters[:1] // a classic reply is v after each letter
		classic.Write(letters)
		v = append(v, letters...)
		readExactly(t, classic, v)
		typed++
	}
	var live, all []*rawWatcher
	join := func() {
		w := dialWatcher(t, port, time.Duration(rng.IntN(3))*time.Millisecond)
		live, all = append(live, w), append(all, w)
	}
	drop := func(reset bool) {
		if len(live) == 0 {
			return
		}
		i := rng.IntN(len(live))
		if reset {
			live[i].c.SetLinger(0)
		}
		live[i].c.Close()
		live = append(live[:i], live[i+1:]...)
	}
	// currentOrTold waits until every live watcher shows v or was told
	// (then it leaves), and checks that none was shown more than v.
	currentOrTold := func() {
		t.Helper()
		kept := live[:0]
		for _, w := range live {
			if !testkit.Poll(30*time.Second, func() bool {
				got, told, err := w.shown()
				return bytes.Equal(got, v) || told != "" || err != nil
			}) {
				got, _, _ := w.shown()
				t.Fatalf("seed %d: a watcher shows %d bytes of v after 30 s, want %d or an 'e' frame", seed, len(got), len(v))
			}
			got, told, err := w.shown()
			switch {
			case err != nil:
				t.Fatalf("seed %d: a watcher's reads ended: %v (shown %d bytes of %d)", seed, err, len(got), len(v))
			case !bytes.HasPrefix(v, got):
				t.Fatalf("seed %d: a watcher shown %q, not a prefix of v", seed, got)
			case told != "":
				w.c.Close()
			default:
				kept = append(kept, w)
			}
		}
		live = kept
	}
	for range 2 + rng.IntN(3) {
		join()
	}
	for step := range 6 + rng.IntN(6) {
		switch rng.IntN(7) {
		case 0:
			join()
		case 1:
			drop(rng.IntN(2) == 0)
		case 2, 3:
			typeLetters(1 + rng.IntN(3))
		case 4:
			typeLetters(1 + rng.IntN(200_000))
		case 5:
			// Quiet until every connection is parked bare (the server's
			// own state: 1 to 2 s after they parked), then one resets or
			// v changes while one stops reading, by more than its socket
			// buffer takes.
			currentOrTold() // those told have left
			if !testkit.Poll(30*time.Second, func() bool { return s.ParkedBare() == len(live)+2 }) {
				t.Fatalf("seed %d: step %d: %d connections parked bare, want every one of the %d", seed, step, s.ParkedBare(), len(live)+2)
			}
			if rng.IntN(2) == 0 {
				drop(true)
			}
			resume := func() {}
			if len(live) > 0 {
				resume = live[rng.IntN(len(live))].stall()
			}
			typeLetters(1 + rng.IntN(2<<20))
			resume()
		case 6:
			// The store cannot be read for a while, shorter or longer
			// than WatchOutage (the pause is the point), while letters
			// are stored. v is read only while there are watchers: those
			// told they ended (by an outage before) have left first.
			currentOrTold()
			st.down.Store(true)
			typeLetters(1 + rng.IntN(100))
			if len(live) > 0 {
				st.readFails(t)
			}
			time.Sleep(time.Duration(rng.IntN(int(2 * outage))))
			st.down.Store(false)
		}
		if rng.IntN(3) == 0 {
			currentOrTold()
		}
	}
	currentOrTold()
	if stop := rng.IntN(2); stop == 0 {
		s.Close()
		for _, w := range live {
			<-w.done
			if got, told, _ := w.shown(); !bytes.Equal(got, v) && told == "" {
				t.Errorf("seed %d: a watcher ended by Close showing %d bytes of %d", seed, len(got), len(v))
			}
		}
	} else {
		shut := make(chan error, 1)
		go func() { shut <- s.Shutdown(context.Background()) }()
		framed.Close()
		classic.Close()
		for _, w := range live {
			w.c.Close()
		}
		if err := <-shut; err != nil {
			t.Fatalf("seed %d: Shutdown: %v", seed, err)
		}
	}
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("seed %d: Serve: %v", seed, err)
	}
	for _, w := range all {
		w.c.Close()
		<-w.done
		if got, _, _ := w.shown(); !bytes.HasPrefix(v, got) {
			t.Fatalf("seed %d: a watcher shown %q, not a prefix of v", seed, got)
		}
	}
	framed.Close()
	classic.Close()
	waitClients(t, st, 0)
	st.Close()
	goleak.VerifyNone(t, before)
	// More would be a leak; fewer, other tests' sockets closed meanwhile.
	if after := testkit.OpenFDs(t); after > fds {
		t.Fatalf("seed %d: %d descriptors open after the server closed, %d before", seed, after, fds)
	}
}
