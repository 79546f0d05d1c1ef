package testkit

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// StaticPort returns a TCP and UDP port that is free now on every address,
// chosen at random below the kernel's ephemeral range (32768 and up on
// Linux). An ephemeral port found free (listening on :0 and closing) the
// kernel may hand to any outgoing connection on the machine (other tests'
// clients included) before the server that needs it binds it; this one it
// never hands out, so for a server started by another program (a shell script,
// systemd-socket-activate) only another test choosing the same port at
// random can take it first. Tests that take their ports here never do:
// the port stays reserved for the test that got it until its cleanup
// (reservePort), whichever test binary on the machine asks next.
func StaticPort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		p := 20000 + rand.IntN(12000)
		if !reservePort(tb, p) {
			continue
		}
		addr := ":" + strconv.Itoa(p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return p
	}
	tb.Fatal("no free port between 20000 and 32000")
	return 0
}
