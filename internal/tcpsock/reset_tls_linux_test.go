//go:build linux

package tcpsock

import (
	"crypto/tls"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/testkit"
)

// Reset works through TLS: it arms the TCP socket beneath for a reset on
// close (SO_LINGER on, zero seconds), so what is still queued for a peer
// that stopped reading is dropped at once.
func TestResetThroughTLS(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	srv := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, "svr")}})
	Reset(srv)
	rc, err := raw.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var l *unix.Linger
	var serr error
	rc.Control(func(fd uintptr) { l, serr = unix.GetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER) })
	if serr != nil || l.Onoff != 1 || l.Linger != 0 {
		t.Fatalf("SO_LINGER after Reset of a TLS connection: %+v, %v; want on, 0 s", l, serr)
	}
}
