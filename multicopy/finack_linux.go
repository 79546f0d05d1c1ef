package multicopy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// finAcked reports whether the peer's kernel has acknowledged this side's
// FIN, and so every byte before it: the socket is past FIN_WAIT1 (or
// LAST_ACK). A reset after that cannot take any of the answer away.
func finAcked(conn net.Conn) bool {
	sc, ok := conn.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var state uint8
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			state = info.State
		}
	})
	switch state {
	case tcpFinWait2, tcpTimeWait, tcpClose:
		return true
	}
	return false
}

// Linux's TCP states (include/net/tcp_states.h).
const (
	tcpTimeWait = 6
	tcpFinWait2 = 5
	tcpClose    = 7
)
