package multicopy

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
)

// tms --keep full of connections that never send their string makes room
// for a client that sends one: Echo says when the string is complete
// (server.Busy), and the server closes the connection waiting longest.
// Without it the client was refused "busy: max number of clients
// reached (4)".
func TestFullTMSKeepServesAClientThatSendsItsString(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Handler: &Server{Copies: 1 << 30}, MaxConns: 4, MaxConnsPerAddr: -1, EvictWaiting: true, Refuse: server.RefuseLine}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if !testkit.Poll(10*time.Second, func() bool { return srv.ActiveConns() == 4 }) {
		t.Fatal("the silent clients were never served")
	}
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "abc\n")
	if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
		t.Fatalf("a client with its string at a full server: %v", err)
	}
	// Four more silent clients come while it is served: each makes room,
	// but never at the cost of the client being served, though it came
	// after the three silent ones left and so has waited longest.
	for i := range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !testkit.Poll(10*time.Second, func() bool { return srv.Evicted() == uint64(i+2) }) {
			t.Fatalf("silent client %d made no room", i+5)
		}
	}
	if n, err := io.CopyN(io.Discard, conn, 1<<20); err != nil {
		t.Fatalf("the client being served was cut off after the silent ones came: %v after %d more bytes", err, n)
	}
}
