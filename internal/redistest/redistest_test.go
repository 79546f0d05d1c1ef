package redistest

import (
	"net"
	"strconv"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// A port reserved for the test can still be taken by a program that does
// not reserve its ports; a first start then moves to another port rather
// than failing the test. (Before: "redis-server exited at start: ...
// Address already in use", as TestLoadingRedisIsNotBackYet did once in 50
// runs while other worktrees' tests ran.)
func TestFirstStartMovesOffATakenPort(t *testing.T) {
	taken := testkit.StaticPort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(taken))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Port: taken, Dir: t.TempDir()}
	if err := startOnAFreePort(t, s); err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	if s.Port == taken {
		t.Fatalf("started on the taken port %d", taken)
	}
	// Start returned once Redis answered PING there; it still listens.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
