package sharedstring

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// A refusal whose goroutine runs late (a loaded machine), after the
// deadline the server set for the whole refusal, still answers: the line
// to a silent classic client, in the rest of the refusal's time. (Before:
// nothing was written and the client saw a bare close.)
func TestLateRefusalStillAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// The deadline the server set before calling the hook, already past.
	conn.SetDeadline(time.Now().Add(-time.Millisecond))
	var s Server
	s.refuse(conn, "max number of clients reached (1)")
	conn.Close()
	got, err := io.ReadAll(c)
	if want := server.BusyLine("max number of clients reached (1)"); string(got) != want || err != nil {
		t.Fatalf("late refusal: %q, %v; want %q", got, err, want)
	}
}
