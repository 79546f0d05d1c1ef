package stream

import (
	"crypto/tls"
	"net"

	"golang.org/x/sys/unix"
)

// cork sets TCP_CORK on conn if it is a TCP connection: the kernel holds
// partial segments until the cork is removed or the connection is shut
// down, and a FIN sent while corked rides on the last data segment.
func cork(conn net.Conn) {
	if t, ok := conn.(*tls.Conn); ok {
		conn = t.NetConn()
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 1)
	})
}

// quickAck sets TCP_QUICKACK on conn if it is a TCP connection: the
// kernel acknowledges what arrives at once rather than after its delayed
// acknowledgement timer. The kernel clears the flag again by itself, so
// it is set after each read.
func quickAck(conn net.Conn) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
}
