package testkit

import (
	"net"
	"os"
	"strconv"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// ListeningPort finds the port a process listens on, and none in a
// process that listens on nothing.
func TestListeningPort(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp here")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if got := ListeningPort(os.Getpid()); got != want {
		t.Errorf("while listening: %q, want %q", got, want)
	}
	ln.Close()
	if got := ListeningPort(os.Getpid()); got != "" {
		t.Errorf("after closing: %q, want none", got)
	}
}

// StartPyServer returns the port of the script itself.
func TestStartPyServerIsTheScriptsPort(t *testing.T) {
	port := StartPyServer(t, nil, "svr.py")
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("svr.py at %s: %v", port, err)
	}
	c.Close()
}
