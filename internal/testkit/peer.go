package testkit

import (
	"net"
	"sync"
	"testing"
)

// ServeEach listens on 127.0.0.1:0 and hands each connection, one at a
// time, to handle, closing it after; it returns the listener's address.
// It is a stand-in peer (a shell server, a busy host) for a client under
// test. The listener is closed and its goroutine awaited at the test's
// end.
func ServeEach(tb testing.TB, handle func(c net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
			c.Close()
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}
