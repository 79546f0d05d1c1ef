package tcpsock

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Cork sets TCP_CORK on conn's TCP connection (under TLS too): the
// kernel holds partial segments until the cork is removed or the
// connection is shut down, and a FIN sent while corked rides on the last
// data segment.
func Cork(conn net.Conn) {
	if tc := tcpConn(conn); tc != nil {
		setInt(tc, unix.IPPROTO_TCP, unix.TCP_CORK, 1)
	}
}

// QuickAck sets TCP_QUICKACK on conn if it is a *net.TCPConn: the kernel
// acknowledges what arrives at once rather than after its delayed
// acknowledgement timer. The kernel clears the flag again by itself, so
// a reader sets it after each read.
func QuickAck(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		setInt(tc, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	}
}

// SetUserTimeout sets TCP_USER_TIMEOUT (RFC 5482) on tc: how long sent
// data, or with keep-alive the peer's silence, may go unacknowledged
// before the kernel ends the connection with ETIMEDOUT. Since Linux 5.11
// it also ends a connection whose peer keeps its receive window closed
// that long.
func SetUserTimeout(tc *net.TCPConn, d time.Duration) error {
	return setInt(tc, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
}

func setInt(tc *net.TCPConn, level, opt, v int) error {
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return err
	}
	return serr
}
