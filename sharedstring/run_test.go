package sharedstring_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

// With Keep, the last client leaving does not end Run: only its context
// does, and Run still returns the final v. In a synctest bubble, over
// pipes: a minute passes on the fake clock after the client leaves, long
// past any look the server takes at its group.
func TestRunWithKeepEndsOnlyWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		defer st.Close()
		srv := &sharedstring.Server{Store: st, Keep: true}
		ln := newPipeListener()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		res := make(chan runResult, 1)
		go func() {
			v, err := srv.Run(ctx, &server.Server{}, ln, nil)
			res <- runResult{v, err}
		}()
		c := ln.dial()
		c.Write([]byte("k"))
		if got, err := io.ReadAll(io.LimitReader(c, 1)); err != nil || string(got) != "k" {
			t.Fatalf("reply %q %v", got, err)
		}
		c.Close()
		time.Sleep(time.Minute) // the point: a fake minute with the group empty
		synctest.Wait()
		select {
		case <-srv.Done():
			t.Fatal("Done closed with Keep")
		case r := <-res:
			t.Fatalf("Run returned with Keep: %q %v", r.v, r.err)
		default:
		}
		cancel()
		if r := <-res; r.err != nil || string(r.v) != "k" {
			t.Fatalf("Run returned %q, %v; want the final v", r.v, r.err)
		}
	})
}

// pipeListener is a net.Listener whose connections are net.Pipes, for
// servers in a synctest bubble (no sockets there).
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial returns the client's end of a new connection.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// failingStore is a Memory whose group cannot be watched, or whose v
// cannot be read once failValue is set.
type failingStore struct {
	*store.Memory
	changesErr error
	failValue  bool
}

var errStoreDown = errors.New("store down; retrying")

func (f *failingStore) Changes(ctx context.Context) (<-chan struct{}, error) {
	if f.changesErr != nil {
		return nil, f.changesErr
	}
	return f.Memory.Changes(ctx)
}

func (f *failingStore) Value(ctx context.Context) ([]byte, error) {
	if f.failValue {
		return nil, errStoreDown
	}
	return f.Memory.Value(ctx)
}

// A group that cannot be watched ends Run at once, saying why (without the
// store's "; retrying": nothing will), with the final v.
func TestRunEndsWhenTheGroupCannotBeWatched(t *testing.T) {
	st := &failingStore{Memory: store.NewMemoryFrom([]byte("v")), changesErr: errStoreDown}
	srv := &sharedstring.Server{Store: st}
	_, res := runServer(t, srv)
	r := <-res
	if r.err == nil || r.err.Error() != "watch clients: store down" || string(r.v) != "v" {
		t.Fatalf("Run returned %q, %v; want v and the watch's error", r.v, r.err)
	}
}

// A final v that cannot be read is a *FinalValueError, with no v.
func TestRunFinalValueError(t *testing.T) {
	st := &failingStore{Memory: store.NewMemory(), failValue: true}
	srv := &sharedstring.Server{Store: st, Keep: true}
	ln, pc := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v, err := srv.Run(ctx, &server.Server{}, ln, pc)
	var fe *sharedstring.FinalValueError
	if !errors.As(err, &fe) || v != nil || !errors.Is(err, errStoreDown) || !strings.HasPrefix(err.Error(), "read the final value of v: store down") || strings.Contains(err.Error(), "retrying") {
		t.Fatalf("Run returned %q, %v; want a FinalValueError", v, err)
	}
}

// The default per-address share (a quarter of MaxConns) never shuts out
// the WaitFor gathering, which may all come from one machine.
func TestGatheringFromOneAddressIsNeverShutOut(t *testing.T) {
	st := store.NewMemory()
	srv := &sharedstring.Server{Store: st, WaitFor: 3}
	port, res := runCapped(t, srv, &server.Server{MaxConns: 4}) // a quarter: 1
	var cs []*sharedstring.Client
	for range 3 {
		cs = append(cs, dial(t, port, sharedstring.Options{Mode: sharedstring.Classic}))
	}
	for i, c := range cs {
		if _, err := c.Send([]byte{byte('a' + i)}); err != nil {
			t.Fatalf("client %d of the gathering: %v", i, err)
		}
		c.Close()
	}
	if r := <-res; r.err != nil || len(r.v) != 3 {
		t.Fatalf("Run returned %q, %v", r.v, r.err)
	}
}
