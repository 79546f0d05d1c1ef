package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
)

// The issue's own session: a tcplab strclnt types hello and world, v is
// deleted in Redis, and the next letter ends the client with "v was reset"
// instead of printing the old copy's "h"; the server says so at WARN; a new
// client sees the true v. (Before: Z printed "h", then Y printed "hel".)
func TestStrsvrRedisResetEndsFramedClient(t *testing.T) {
	r := redistest.New(t)
	bin := testkit.Binary(t)
	svr, port := startGroupServer(t, r.URL("v"), "--keep")
	ty := startTypist(t, bin, "strclnt", "localhost", port)
	ty.typeLetter(t, "hello", "hello")
	ty.typeLetter(t, "world", "helloworld")
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	if err := rc.Del(context.Background(), "v").Err(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(ty.in, "Z\n")
	if code := ty.proc.Wait(t, 10*time.Second); code != 1 {
		t.Fatalf("strclnt after DEL: exit %d, want 1; stdout %q stderr %q", code, ty.proc.Stdout.String(), ty.proc.Stderr.String())
	}
	if got := ty.proc.Stdout.String(); got != ty.want {
		t.Errorf("strclnt printed %q after the reset, want nothing more than %q", got, ty.want)
	}
	if !strings.Contains(ty.proc.Stderr.String(), "v was reset") {
		t.Errorf("strclnt's error does not say v was reset: %q", ty.proc.Stderr.String())
	}
	svr.WaitFor(t, "level=WARN msg=\"v in Redis is not the v this server had", 10*time.Second)
	fresh := startTypist(t, bin, "strclnt", "localhost", port)
	fresh.typeLetter(t, "Y", "ZY")
	fresh.leave(t)
}
