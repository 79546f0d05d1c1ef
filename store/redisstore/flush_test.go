package redisstore

import (
	"context"
	"testing"

	"github.com/tcplab/tcplab/internal/redistest"
)

// The group's count is not taken for empty because its keys were lost
// (FLUSHALL, DEL of NAME:clients or NAME:servers) while servers still have
// clients. (Before: after a FLUSHALL, the next client to leave anywhere
// made every strsvr of the group read a count of 0: the one that client
// left printed "the final value of v" and exited, and so did one whose own
// watcher was still connected, closing it.)
func TestGroupCountSurvivesLostKeys(t *testing.T) {
	r := redistest.New(t)
	c := redisClient(t, r)
	ctx := context.Background()
	for _, lose := range [][]string{{"FLUSHALL"}, {"DEL", "v:clients"}, {"DEL", "v:servers"}} {
		t.Run(lose[0]+" "+lose[len(lose)-1], func(t *testing.T) {
			c.FlushAll(ctx)
			a := open(t, r, "v", "lease=900ms")
			b := open(t, r, "v", "lease=900ms")
			leaveA, err := a.Join(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer leaveA()
			leaveB, err := b.Join(ctx)
			if err != nil {
				t.Fatal(err)
			}
			args := make([]any, len(lose))
			for i, s := range lose {
				args[i] = s
			}
			if err := c.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
			a.count.invalidate()
			if n, err := a.Clients(ctx); err != nil || n < 1 {
				t.Errorf("after %v, the server with a client counts %d clients in the group (%v)", lose, n, err)
			}
			leaveB()
			if n, err := b.Clients(ctx); err != nil || n < 1 {
				t.Errorf("after %v and a client of B leaving, B counts %d clients in the group (%v); A still has one", lose, n, err)
			}
		})
	}
}
