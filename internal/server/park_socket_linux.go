package server

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// detach makes pk, which ParkSocket made, a bare socket: the server keeps
// a copy of conn's descriptor and closes conn, which frees the runtime's
// poll descriptor and lets conn be collected (the socket stays open
// through the copy, so the close sends nothing, whatever SO_LINGER says).
// When the descriptor cannot be copied (out of descriptors), pk is parked
// as by Park instead.
func (s *Server) detach(t *tracked, pk *parked, conn net.Conn) {
	pk.bare = false
	if t == nil {
		return
	}
	// Under s.mu: Close closes conn under it, and its descriptor's
	// number may be another file's at once.
	s.mu.Lock()
	if s.connsClosed {
		s.mu.Unlock()
		return
	}
	fd, err := unix.FcntlInt(uintptr(pk.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		t.conn, t.bare = nil, pk
		pk.conn, pk.fd, pk.bare = nil, int32(fd), true
	}
	s.mu.Unlock()
	if err == nil {
		conn.Close()
	}
}

// attach makes pk's bare socket a net.Conn again, for its handler, and
// gives up the server's descriptor. If the server closed its connections
// meanwhile, the new one is closed too. A socket that cannot be made a
// net.Conn (out of descriptors) is closed, and its handler given a
// connection whose every call fails with the reason.
func (s *Server) attach(t *tracked, pk *parked) net.Conn {
	s.parker.forget(int(pk.fd))
	f := os.NewFile(uintptr(pk.fd), "parked socket")
	conn, err := net.FileConn(f)
	if err == nil {
		// FileConn turns on keep-alive with Go's defaults (15 s, every
		// 15 s, 9 probes): the server's own settings again, as at the
		// accept. The user timeout, like every other option, stayed.
		err = DetectVanishedPeer(conn, s.KeepAlive, s.UserTimeout)
		if err != nil {
			s.logger().Warn("vanished peers may hold this slot", "client", conn.RemoteAddr().String(), "err", err)
		}
	} else {
		conn = &lostConn{err: fmt.Errorf("resume a parked connection: %w", err), laddr: sockAddr(unix.Getsockname(int(pk.fd))), raddr: sockAddr(unix.Getpeername(int(pk.fd)))}
	}
	s.mu.Lock()
	if t != nil {
		t.conn, t.bare = conn, nil
	}
	closed := s.connsClosed
	s.mu.Unlock()
	pk.conn = conn
	f.Close()
	if closed {
		conn.Close()
	}
	return conn
}

// interruptFD is Interrupt for a socket parked bare: shutdown(SHUT_RD)
// wakes the parking set and frees nothing; with reset, SO_LINGER 0 first,
// so that the handler's close is a reset.
func interruptFD(fd int, reset bool) {
	if reset {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	unix.Shutdown(fd, unix.SHUT_RD)
}

// sockAddr is a socket address as net gives it, for the log of a
// connection lost on its way back from parking.
func sockAddr(sa unix.Sockaddr, err error) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}
