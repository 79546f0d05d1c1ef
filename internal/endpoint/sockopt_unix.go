//go:build unix

package endpoint

import (
	"net"

	"golang.org/x/sys/unix"
)

// firstByteIsTLS peeks (MSG_PEEK: the byte stays queued for the handshake)
// at the first byte a TCP client sent, under conn's read deadline. It
// reports true for anything it cannot peek at, leaving the verdict to the
// handshake.
func firstByteIsTLS(conn net.Conn) (bool, error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return true, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return true, nil
	}
	var b [1]byte
	var n int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
		return perr != unix.EAGAIN
	})
	if err != nil {
		return false, err // the deadline passed, or the connection closed
	}
	if perr != nil || n == 0 {
		return true, nil // end of file or an error: the handshake will say
	}
	return b[0] == recordTypeHandshake, nil
}

// isListening reports whether ln's socket is listening (SO_ACCEPTCONN):
// a socket passed by systemd with Accept=yes is a connection instead.
func isListening(ln *net.TCPListener) (bool, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return false, err
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	}); err != nil {
		return false, err
	}
	return v == 1, serr
}
