package multicopy

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// finAcked reports whether the peer's kernel holds the whole answer and
// its end: it has acknowledged this side's FIN (the socket is past
// FIN_WAIT1 or LAST_ACK), and with it every byte of the sent bytes
// before it. A reset after that cannot take any of the answer away. It
// returns an error when the connection ended before that (the peer reset
// it: it left, or its program closed before reading).
func finAcked(conn net.Conn, sent int64) (bool, error) {
	sc, ok := conn.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return true, nil // nothing to look at: as before the check
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false, err
	}
	var info *unix.TCPInfo
	var soErr int
	raw.Control(func(fd uintptr) {
		info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		soErr, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	})
	if info == nil {
		return true, nil
	}
	switch info.State {
	case tcpFinWait2, tcpTimeWait:
		return true, nil
	case tcpClose:
		// Closed after the peer's FIN and the acknowledgement of ours
		// (LAST_ACK), or by a reset: then not all of the answer was
		// acknowledged, or a reset error waits on the socket.
		if soErr != 0 {
			return false, syscall.Errno(soErr)
		}
		if int64(info.Bytes_acked) < sent {
			return false, syscall.ECONNRESET
		}
		return true, nil
	}
	if soErr != 0 {
		return false, syscall.Errno(soErr)
	}
	return false, nil
}

// Linux's TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpCloseWait   = 8
	tcpTimeWait    = 6
	tcpFinWait2    = 5
	tcpClose       = 7
)

// heardAgo is how long ago the last segment came from conn's peer
// (tcpi_last_ack_recv: any segment acknowledging what this side sent, or
// nothing, counts), read with one system call.
func heardAgo(conn net.Conn) (time.Duration, bool) {
	sc, ok := conn.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	raw.Control(func(fd uintptr) {
		info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if info == nil {
		return 0, false
	}
	return time.Duration(info.Last_ack_recv) * time.Millisecond, true
}

// established reports whether conn is still open both ways or with only
// the peer's side closed: a reset still has someone to tell. After the
// peer's reset, or a kernel timeout, the socket is closed already.
func established(conn net.Conn) bool {
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
	var info *unix.TCPInfo
	raw.Control(func(fd uintptr) {
		info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	return info != nil && (info.State == tcpEstablished || info.State == tcpCloseWait)
}
