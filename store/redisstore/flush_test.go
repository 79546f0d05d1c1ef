package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/redistest"
)

// leased waits until s's keeper has written its first lease, so that no
// renewal of its own comes later than the test wants: with a lease of an
// hour, the next is twenty minutes away.
func leased(t *testing.T, s *Store) {
	t.Helper()
	for !s.leased.Load() {
		if s.ctx.Err() != nil {
			t.Fatal("store closed before its first lease")
		}
		time.Sleep(time.Millisecond) // polls the store's own state
	}
}

// clientsWhile runs s.Clients and returns its answer; if Clients waits for
// the group to regroup first, it calls then() and returns the answer
// after.
func clientsWhile(t *testing.T, s *Store, then func()) (n int64, waited bool) {
	t.Helper()
	waiting := make(chan struct{}, 1)
	s.waitHook = func(time.Duration) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	defer func() { s.waitHook = nil }()
	type answer struct {
		n   int64
		err error
	}
	done := make(chan answer, 1)
	go func() {
		n, err := s.Clients(context.Background())
		done <- answer{n, err}
	}()
	select {
	case a := <-done:
		if a.err != nil {
			t.Fatal(a.err)
		}
		return a.n, false
	case <-waiting:
	}
	then()
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.n, true
}

// The group is not taken for empty because its keys were lost (FLUSHALL,
// DEL of NAME:clients, NAME:servers or the mark NAME:group) while a server
// still has clients, whichever server finds the loss first, or none.
// (Before: after a FLUSHALL, the next client to leave anywhere made every
// strsvr of the group read a count of 0: the one that client left printed
// "the final value of v" and exited, and so did one whose own watcher was
// still connected, closing it. A first fix kept a window only in the
// server that saw the loss, and its test was racy.)
//
// A holds a client and does not renew its lease until told (the lease is
// an hour); B either has a client that leaves after the loss, or never had
// one, and reads the group's count. B must wait rather than answer 0, and
// answer 1 once A has renewed: the renewal is the event it waits for.
func TestGroupCountSurvivesLostKeys(t *testing.T) {
	r := redistest.New(t)
	c := redisClient(t, r)
	ctx := context.Background()
	for _, lose := range [][]string{{"FLUSHALL"}, {"DEL", "v:clients"}, {"DEL", "v:servers"}, {"DEL", "v:group", "v:servers", "v:clients"}} {
		for _, bJoins := range []bool{true, false} {
			name := strings.Join(lose, " ")
			if !bJoins {
				name += " B idle"
			}
			t.Run(name, func(t *testing.T) {
				c.FlushAll(ctx)
				a := open(t, r, "v", "lease=1h")
				b := open(t, r, "v", "lease=1h")
				leased(t, a)
				leased(t, b)
				if _, err := a.Join(ctx); err != nil {
					t.Fatal(err)
				}
				leaveB := func() {}
				want := int64(1)
				if bJoins {
					var err error
					if leaveB, err = b.Join(ctx); err != nil {
						t.Fatal(err)
					}
					want = 2
				}
				waitClients(t, b, want, "before the loss")
				args := make([]any, len(lose))
				for i, s := range lose {
					args[i] = s
				}
				if err := c.Do(ctx, args...).Err(); err != nil {
					t.Fatal(err)
				}
				leaveB()
				n, waited := clientsWhile(t, b, func() { a.probeNow() })
				if n != 1 {
					t.Errorf("after %v, B counts %d clients in the group (waited for A to renew: %v); A has one", lose, n, waited)
				}
				if n, err := a.Clients(ctx); err != nil || n != 1 {
					t.Errorf("after %v, A counts %d clients in the group (%v); it has one", lose, n, err)
				}
			})
		}
	}
}

// A group whose keys were lost and whose other servers are gone is empty
// once the window of distrust ends: the wait is not forever.
func TestLostGroupEndsWithoutTheDead(t *testing.T) {
	r := redistest.New(t)
	c := redisClient(t, r)
	ctx := context.Background()
	a := open(t, r, "v", "lease=300ms")
	b := open(t, r, "v", "lease=300ms")
	if _, err := a.Join(ctx); err != nil {
		t.Fatal(err)
	}
	leaveB, err := b.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.shutdown() // killed: it never renews again
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	leaveB()
	waited := false
	b.waitHook = func(time.Duration) { waited = true }
	if n := clients(t, b); n != 0 {
		t.Errorf("with the other server dead, B counts %d clients, want 0", n)
	}
	if !waited {
		t.Error("B took the group for empty without waiting out the window after the loss")
	}
}

// After more failed dials than the pool has connections (Redis down while
// the store probes it), the store still dials at every try, and reaches
// Redis at its first try once Redis is back. (Before: go-redis's pool
// stopped dialing after PoolSize failed dials, failing every later one
// at once with the last dial error, and probed Redis from a goroutine of
// its own once a second; so after an outage the store's probes failed
// without trying for up to a second after Redis answered, and watchers
// caught up late: 1.22 s in the checker's long run.)
func TestDialsAtEveryTryAfterManyFailures(t *testing.T) {
	r := redistest.New(t)
	s := open(t, r, "v")
	leased(t, s)
	ctx := context.Background()
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	pool := s.client.Options().PoolSize
	before := s.dialer.attempts.Load()
	for range 3 * pool {
		v, c := s.members.now()
		if err := s.pushLease(ctx, v, c); err == nil {
			t.Fatal("a lease pushed to a killed Redis")
		}
	}
	if n := s.dialer.attempts.Load() - before; n < int64(2*pool) {
		t.Errorf("%d tries against a Redis that is down dialed %d times: the pool stopped dialing", 3*pool, n)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	v, c := s.members.now()
	if err := s.pushLease(ctx, v, c); err != nil {
		t.Errorf("the first try after Redis came back failed: %v", err)
	}
}

// A loss found again by every read while the group's keys stay parted is
// announced once: each announcement wakes every server of the group to
// read again, and each read would find it again.
func TestLostGroupAnnouncedOnce(t *testing.T) {
	r := redistest.New(t)
	c := redisClient(t, r)
	ctx := context.Background()
	s := open(t, r, "v", "lease=1h")
	leased(t, s)
	ps := c.Subscribe(ctx, "v:changes")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	if err := c.Del(ctx, "v:clients").Err(); err != nil {
		t.Fatal(err)
	}
	for range 3 { // as three servers' reads (this one's keeper does not renew meanwhile)
		if err := clientsScript.Run(ctx, c, s.names.group, s.names.channel, "1", s.window().Milliseconds()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Publish(ctx, "v:changes", "end")
	announced := 0
	for {
		m, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Payload == "end" {
			break
		}
		if m.Payload == "clients" {
			announced++
		}
	}
	if announced != 1 {
		t.Errorf("three reads of a group whose counts were lost announced %d changes, want 1", announced)
	}
}
