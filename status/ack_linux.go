package status

import (
	"net"

	"golang.org/x/sys/unix"
)

// unsentBytes is the size of conn's send queue: bytes written and not yet
// acknowledged by the peer, counting the FIN as one (SIOCOUTQ, tcp(7)).
func unsentBytes(conn *net.TCPConn) (int, bool) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
