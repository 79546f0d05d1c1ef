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

// noLimit is the timeout the tests give Ask, identify and the fleet
// functions, whose time limit they do not check: none, so an exchange
// ends when the server closes, however slow the machine (go test's
// -timeout catches a hang). With limits of 10 and 20 s, a loaded CI
// machine failed TestFleetSafeAgainstSvrPy and
// TestIdentifyLetsSvrPyFinish (the probe of svr.py, 100,000 lines,
// gave up, and svr.py died of the broken pipe).
var noLimit = Options{Timeout: -1}

// noTimeout is noLimit's timeout as the unexported functions take it.
const noTimeout = 0

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
