package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/redistest"
)

// A Redis ACL user that may not run a command the store's scripts need
// is refused at Open, with one line naming the command, so strsvr does
// not start. (Before: with PUBLISH denied, or the writes denied, Open
// succeeded and strsvr said "listening", then dropped every client with a
// WARN, each told only "server closed the connection", and exited 143 at
// SIGTERM as if all was well.)
func TestOpenRefusesAnACLThatForbidsWhatTheStoreRuns(t *testing.T) {
	r := redistest.New(t)
	c := redisClient(t, r)
	ctx := context.Background()
	if err := c.Do(ctx, "ACL", "WHOAMI").Err(); err != nil {
		t.Skipf("this redis-server has no ACLs: %v", err)
	}
	for _, tt := range []struct {
		user string
		rule []string
		want string
	}{
		{"nopub", []string{"+@all", "-publish"}, "PUBLISH"},
		{"readonly", []string{"+@read", "+@connection", "+@scripting", "+time"}, "APPEND"},
		{"nohset", []string{"+@all", "-hset"}, "HSET"},
		{"otherkeys", []string{"+@all", "resetkeys", "~v", "~v:epoch"}, "v:servers"},
	} {
		t.Run(tt.user, func(t *testing.T) {
			args := append([]any{"ACL", "SETUSER", tt.user, "on", ">pw", "~*", "&*"}, toAny(tt.rule)...)
			if err := c.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			s, err := Open(octx, "redis://"+tt.user+":pw@"+r.Addr()+"/0?key=v")
			if err == nil {
				s.Close()
				t.Fatalf("Open as %s (%v) succeeded", tt.user, tt.rule)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "pw@") {
				t.Errorf("err = %q; want one line naming %s", err, tt.want)
			}
		})
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}
