package fleet

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/status"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// startSVR serves tcplab svr allowing names on 127.0.0.1:0 and returns
// its address; the server is closed when the test ends.
func startSVR(t *testing.T, names ...string) string {
	t.Helper()
	al, err := status.NewAllowList(names, false)
	if err != nil {
		t.Fatal(err)
	}
	svc := &status.Service{Allow: al, Runner: &status.Runner{}, QuietGap: 50 * time.Millisecond, ReadTimeout: 2 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Handler: svc}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
