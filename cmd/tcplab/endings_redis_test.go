package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/tcplab/tcplab/internal/redistest"
)

// strsvr on Redis, stopped while Redis is down: the final v cannot be
// read. It exits 1 with one line that says so, without the store's
// "; retrying" (nothing will retry: strsvr is exiting).
func TestEndingsStrSvrRedisDownAtTheEnd(t *testing.T) {
	r := redistest.New(t)
	srv := startCmd(t, captured, captured, "strsvr", "--keep", "--no-discovery", "--store", r.URL("down"), "0")
	classicClient(t, srv.port(t), "a")
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	srv.signal(t, syscall.SIGTERM)
	expectEnd(t, srv, exitFailed, `^tcplab strsvr: read the final value of v: redis .*(unavailable|connection refused)`)
	if last := lastLine(srv.stderr.String()); strings.Contains(last, "retrying") {
		t.Errorf("last line %q", last)
	}
}
