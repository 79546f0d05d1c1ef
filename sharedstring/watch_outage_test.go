package sharedstring_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
	"go.uber.org/goleak"
)

// outageStore is a Memory whose v cannot be read while down is set: a
// store that lost its Redis. Each failed read is signalled on failed.
type outageStore struct {
	*store.Memory
	down   atomic.Bool
	failed chan struct{}
}

func newOutageStore(v string) *outageStore {
	return &outageStore{Memory: store.NewMemoryFrom([]byte(v)), failed: make(chan struct{}, 1)}
}

func (o *outageStore) Value(ctx context.Context) ([]byte, error) {
	if o.down.Load() {
		select {
		case o.failed <- struct{}{}:
		default:
		}
		return nil, errStoreDown
	}
	return o.Memory.Value(ctx)
}

// readFails waits for a read of v to fail.
func (o *outageStore) readFails(t *testing.T) {
	t.Helper()
	select {
	case <-o.failed:
	case <-time.After(30 * time.Second):
		t.Fatal("no read of v for 30 s: the watchers wait for a signal that may never come")
	}
}

// parkedWatchers dials n watchers of a server on st and waits for each
// to show want.
func parkedWatchers(t *testing.T, port string, n int, want string) []*sharedstring.Client {
	t.Helper()
	var ws []*sharedstring.Client
	for range n {
		w := dial(t, port, sharedstring.Options{Watch: true})
		nextV(t, w, []byte(want))
		ws = append(ws, w)
	}
	return ws
}

// Issues 22 and 17 together: watchers that wait out a store that cannot be
// read hold no goroutine each while they wait (one timer and one
// goroutine serve them all), and are caught up when the store answers
// again, with no change signal needed (a store back from an outage may
// have missed its notifications).
func TestWatchersWaitOutAnOutageHoldingNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	const each = 25
	st := newOutageStore("v:")
	_, port := startCapped(t, st, &server.Server{MaxConns: 4 * each, MaxConnsPerAddr: -1}, func(s *sharedstring.Server) {
		s.MaxWatchers = 2 * each
		s.WatchOutage = time.Hour // waited out, never told, in this test
	})
	base := runtime.NumGoroutine()
	ws := parkedWatchers(t, port, each, "v:")

	st.down.Store(true)
	if _, err := st.Memory.Append(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	// The change's read fails; so does the next, which no signal asked
	// for: the watchers read again by themselves.
	st.readFails(t)
	st.readFails(t)
	// Only the server's goroutines show that the watchers are parked,
	// and a goroutine ends with no event (sharedstring.Server does not
	// pass on internal/server's ConnState hook, and StateParked would
	// not say the goroutine is gone): look until they are few, for as
	// long as a silent client may keep one.
	if !testkit.Poll(20*time.Second, func() bool { return runtime.NumGoroutine() < base+each/2 }) {
		t.Fatalf("%d goroutines for %d watchers waiting out an outage", runtime.NumGoroutine()-base, each)
	}
	st.readFails(t) // still trying, still parked
	st.down.Store(false)
	for i, c := range ws {
		w := watch(c)
		w.currentOrTold(t, fmt.Sprint("watcher ", i), []byte("v:x"), 10*time.Second)
		if _, _, err := w.state(); err != nil {
			t.Errorf("watcher %d: %v, want it caught up, not ended", i, err)
		}
	}
}

// A watcher whose store cannot be read for WatchOutage is told so with an
// 'e' frame and ended, whether it waited parked since before the outage
// or came during it; one that comes once the store answers is served.
func TestWatchersToldAfterWatchOutage(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	const each = 10
	st := newOutageStore("v:")
	_, port := startCapped(t, st, &server.Server{MaxConns: 4 * each, MaxConnsPerAddr: -1}, func(s *sharedstring.Server) {
		s.MaxWatchers = 2 * each
		s.WatchOutage = time.Second
	})
	ws := parkedWatchers(t, port, each, "v:")
	st.down.Store(true)
	if _, err := st.Memory.Append(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	st.readFails(t)
	late := dial(t, port, sharedstring.Options{Watch: true})
	for i, c := range append(ws, late) {
		w := watch(c)
		expired := time.After(30 * time.Second)
		for {
			v, changed, err := w.state()
			if v != nil && string(v) != "v:" {
				t.Fatalf("watcher %d shown %q during the outage", i, v)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "could not read v from its store for 1s") {
					t.Fatalf("watcher %d ended with %v, want the outage's 'e' frame", i, err)
				}
				break
			}
			select {
			case <-changed:
			case <-expired:
				t.Fatalf("watcher %d neither current nor told 30 s into an outage with WatchOutage 1 s", i)
			}
		}
	}
	st.down.Store(false)
	nextV(t, dial(t, port, sharedstring.Options{Watch: true}), []byte("v:x"))
}
