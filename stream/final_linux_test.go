package stream

import (
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// WriteFinal delivers the answer and then end of file, and on Linux it
// does so corked, so the FIN can ride on the last data segment.
func TestWriteFinalAnswersThenEndOfFile(t *testing.T) {
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	if err := WriteFinal(a, []byte("load average: 0.00\n")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "load average: 0.00\n" {
		t.Fatalf("read %q, %v; want the answer, then end of file", got, err)
	}
	if c := corked(t, a.(*net.TCPConn)); c != 1 {
		t.Fatalf("TCP_CORK = %d; want 1", c)
	}
	// The write side is shut: a further write fails.
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("write after WriteFinal succeeded")
	}
}

// corked reads conn's TCP_CORK.
func corked(t *testing.T, conn *net.TCPConn) int {
	t.Helper()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	raw.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK)
	})
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}
