package endpoint

import (
	"context"
	"net"
	"testing"
	"time"
)

// ListenForRequests hands over a connection once its first bytes are there:
// a silent client waits in the kernel and takes none of the server's slots,
// and a client that speaks is accepted with its request ready to read.
func TestListenForRequestsDefersAcceptUntilData(t *testing.T) {
	ln, err := ListenForRequests(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a client that sent nothing was accepted at once")
	case <-time.After(300 * time.Millisecond):
	}
	talker, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	talker.Write([]byte("ps"))
	select {
	case c := <-accepted:
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 8)
		if n, err := c.Read(buf); string(buf[:n]) != "ps" {
			t.Fatalf("first read of the accepted client: %q, %v", buf[:n], err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a client that sent its request was not accepted")
	}
	ln.Close()
	for c := range accepted {
		c.Close()
	}
}
