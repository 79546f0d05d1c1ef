//go:build linux

package stream

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// Over TLS, WriteFinal ends the answer as over TCP: the TLS end of data
// (close_notify), then the TCP end of file, so a peer reading either way
// stops at once, while this side can still read what the peer sends.
func TestWriteFinalOverTLS(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	serverRaw, clientRaw := tcpPair(t)
	defer serverRaw.Close()
	defer clientRaw.Close()
	srv := tls.Server(serverRaw, &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, "svr")}})
	cli := tls.Client(clientRaw, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	handshook := make(chan error, 1)
	go func() { handshook <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshook; err != nil {
		t.Fatal(err)
	}

	if err := WriteFinal(srv, []byte("load average: 0.00\n")); err != nil {
		t.Fatal(err)
	}
	clientRaw.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(cli)
	if err != nil || string(got) != "load average: 0.00\n" {
		t.Fatalf("TLS read %q, %v; want the answer, then close_notify", got, err)
	}
	// The server has not closed its socket: only a FIN sent by WriteFinal
	// ends the TCP stream here.
	n, err := clientRaw.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Fatalf("TCP read after close_notify: %d, %v; want end of file", n, err)
	}
	// The server can still read: the client half-closes in turn.
	if err := cli.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	serverRaw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(srv); err != nil || len(b) != 0 {
		t.Fatalf("server read after WriteFinal: %q, %v", b, err)
	}
	if c := corked(t, serverRaw.(*net.TCPConn)); c != 1 {
		t.Fatalf("TCP_CORK under TLS = %d; want 1 (the records and the FIN leave together)", c)
	}
}
