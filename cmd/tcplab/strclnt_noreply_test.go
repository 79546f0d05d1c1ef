package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// strclnt that gives up on a reply says its letter may still have been
// added: the server got it, and a late reply is not a lost letter.
func TestStrclntNoReplySaysTheLetterMayStillArrive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // held open, never answered
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cli := testkit.Start(t, strings.NewReader("a\n"), testkit.Binary(t), "strclnt", "--classic", "--timeout", "300ms", "127.0.0.1", port)
	code := cli.Wait(t, 20*time.Second)
	if c := <-accepted; c != nil {
		c.Close()
	}
	want := "tcplab strclnt: no reply within 300ms (the letter may still have been added)\n"
	if code != 1 || cli.Stderr.String() != want {
		t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, cli.Stderr.String(), want)
	}
}
