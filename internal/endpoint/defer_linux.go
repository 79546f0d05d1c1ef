package endpoint

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// deferAccept sets TCP_DEFER_ACCEPT on a listening socket: the kernel
// hands a connection to accept only once its first bytes have arrived
// (or after about a second without them). A server whose client speaks
// first then finds the request already there when it reads, instead of
// parking the handler until it comes; a client that connects and says
// nothing waits in the kernel, not in one of the server's connection slots.
func deferAccept(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
