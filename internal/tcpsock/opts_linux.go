package tcpsock

import (
	"net"
	"syscall"
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

// sendQueue is what AwaitAcked looks at: SIOCOUTQ (bytes and FIN not
// yet acknowledged), whether the kernel has closed the connection, and
// then the error it holds (SO_ERROR, which reading takes away, so it is
// read only once the connection is over). ok is false where it cannot
// be read.
func sendQueue(tc *net.TCPConn) (q queue, ok bool) {
	raw, rerr := tc.SyscallConn()
	if rerr != nil {
		return queue{}, false
	}
	var info *unix.TCPInfo
	var ierr, qerr error
	var soErr int
	if raw.Control(func(fd uintptr) {
		if info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); ierr != nil {
			return
		}
		if q.queued, qerr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); qerr != nil {
			return
		}
		if info.State == tcpClose && q.queued > 0 {
			soErr, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		}
	}) != nil || ierr != nil || qerr != nil {
		return queue{}, false
	}
	if soErr != 0 {
		q.err = syscall.Errno(soErr)
	}
	q.closed = info.State == tcpClose
	return q, true
}
