package redisstore

import (
	"context"
	"strconv"
	"testing"

	"github.com/tcplab/tcplab/internal/redistest"
)

// Redis's clock stepping forward by more than a lease (an NTP step, the
// Redis host's VM resumed, a failover to a replica whose clock is ahead)
// makes every lease look run out at once, the live servers' too. The
// first server to renew must not sweep the others away and then take the
// group for empty: its own lease had run out as well, though it renewed
// every third of a lease, so the leases cannot be trusted until the
// others have renewed. (Before: B's last client left, B's renewal swept
// A, whose client was still connected, and B read the group as empty:
// its strsvr would print "the final value of v" and exit.)
//
// The step is made by moving every lease's end into Redis's past, which
// is what the scripts see when TIME jumps past them.
func TestClockStepDoesNotEmptyTheGroup(t *testing.T) {
	r := redistest.New(t)
	c := redisClient(t, r)
	ctx := context.Background()
	a := open(t, r, "v", "lease=1h")
	b := open(t, r, "v", "lease=1h")
	leased(t, a)
	leased(t, b)
	if _, err := a.Join(ctx); err != nil {
		t.Fatal(err)
	}
	leaveB, err := b.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitClients(t, b, 2, "before the step")
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	past := strconv.FormatInt(now.UnixMilli()-1, 10)
	for _, id := range []string{a.id, b.id} {
		if err := c.Do(ctx, "ZADD", "v:servers", "XX", past, id).Err(); err != nil {
			t.Fatal(err)
		}
	}
	leaveB()
	n, waited := clientsWhile(t, b, func() { a.probeNow() })
	if n != 1 {
		t.Errorf("after Redis's clock stepped past every lease, B counts %d clients in the group (waited for A to renew: %v); A has one", n, waited)
	}
}

// Redis going back in time (a restart from an older RDB snapshot, a
// failover to a replica that had not yet seen the last lease writes) can
// bring back counts older than the servers' own: here B's count of 0 from
// before its client joined, under a lease still running. A, whose own
// last client then leaves, must not take the group for empty.
//
// The snapshot is taken with DUMP and put back with RESTORE, which is
// what the group's keys look like after such a restart.
func TestGroupKeysGoneBackInTime(t *testing.T) {
	r := redistest.New(t)
	c := redisClient(t, r)
	ctx := context.Background()
	a := open(t, r, "v", "lease=1h")
	b := open(t, r, "v", "lease=1h")
	leased(t, a)
	leased(t, b)
	leaveA, err := a.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitClients(t, a, 1, "before the snapshot")
	keys := []string{"v:servers", "v:clients", "v:group"}
	snap := map[string]string{}
	for _, k := range keys {
		d, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(k, err)
		}
		snap[k] = d
	}
	if _, err := b.Join(ctx); err != nil {
		t.Fatal(err)
	}
	waitClients(t, a, 2, "after B's client joined")
	for _, k := range keys {
		if err := c.RestoreReplace(ctx, k, 0, snap[k]).Err(); err != nil {
			t.Fatal(k, err)
		}
	}
	leaveA()
	n, waited := clientsWhile(t, a, func() { b.probeNow() })
	if n != 1 {
		t.Errorf("with the group's keys back from before B's client joined, A counts %d clients (waited for B to renew: %v); B has one", n, waited)
	}
}
