package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// detach makes pk, parked by ParkSocket and still armed in the set, a
// bare socket: the server arms a copy of its descriptor in place of the
// original and returns conn, for the caller to close once p.mu is let go
// (which frees the runtime's poll descriptor and lets conn be collected;
// the socket stays open through the copy, so the close sends nothing,
// whatever SO_LINGER says). It returns nil, and pk stays as it is, when
// the server is closing its connections or the descriptor cannot be
// copied or armed (out of descriptors); and reports later, pk to be
// detached at a later sweep, while Write writes through conn. p.mu is
// held; s.mu is taken, so that Close and making room see conn or the
// copy, never neither, and Write sees conn or the copy as it begins and
// keeps conn open until it ends.
func (p *parker) detach(s *Server, pk *parked) (_ net.Conn, later bool) {
	t, _ := pk.ctx.Value(trackedKey{}).(*tracked)
	if t == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connsClosed || t.conn != pk.conn {
		return nil, false
	}
	if t.writing {
		return nil, true
	}
	fd, err := unix.FcntlInt(uintptr(pk.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	p.seq++
	if err := p.set.arm(fd, token(fd, p.seq)); err != nil {
		unix.Close(fd)
		return nil, false
	}
	// The copy is armed (it reports the socket at once if it is ready
	// already); the original leaves the set, with any event it had
	// pending.
	p.set.forget(int(pk.fd))
	p.byFD[pk.fd] = nil
	if fd >= len(p.byFD) {
		p.byFD = append(p.byFD, make([]*parked, fd+1-len(p.byFD))...)
	}
	p.byFD[fd] = pk
	conn := pk.conn
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		pk.port = uint16(a.Port)
	}
	pk.fd, pk.seq, pk.conn, pk.bare = int32(fd), p.seq, nil, true
	t.conn, t.bare = nil, pk
	return conn, false
}

// attach makes pk's bare socket a net.Conn again, for its handler, and
// gives up the server's descriptor. If the server closed its connections
// meanwhile, the new one is closed too. Out of descriptors, it borrows the
// set's reserve (lendSpare). A socket that cannot be made a net.Conn
// (out of descriptors even so, or reset by its client) is closed, and its
// handler given a connection whose every call fails with the reason.
func (s *Server) attach(t *tracked, pk *parked) net.Conn {
	s.parker.forget(int(pk.fd))
	f := os.NewFile(uintptr(pk.fd), "parked socket")
	conn, err := net.FileConn(f)
	var spare *epollSet
	if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
		// Out of descriptors (silent connections fill the table): with
		// the one held in reserve, given back once f is closed below.
		if e, ok := s.parker.set.(*epollSet); ok && e.lendSpare() {
			spare = e
			conn, err = net.FileConn(f)
		}
	}
	if err == nil && conn.RemoteAddr() == nil {
		// The client reset the connection while it was bare (or it timed
		// out): the kernel has closed the socket and getpeername fails,
		// so FileConn's conn has no peer address, and every handler that
		// logs it would panic. Its every call would fail anyway: it is
		// handed over as lost, with the socket's error.
		conn.Close()
		err = unix.ENOTCONN
		if e, _ := unix.GetsockoptInt(int(pk.fd), unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
			err = unix.Errno(e)
		}
	}
	if err == nil {
		// FileConn turns on keep-alive with Go's defaults (15 s, every
		// 15 s, 9 probes): the server's own settings again, as at the
		// accept. The user timeout, like every other option, stayed.
		err = DetectVanishedPeer(conn, s.KeepAlive, s.UserTimeout)
		if err != nil {
			s.logger().Warn("vanished peers may hold this slot", "client", conn.RemoteAddr().String(), "err", err)
		}
	} else {
		conn = &lostConn{err: fmt.Errorf("resume a parked connection: %w", err), laddr: sockAddr(unix.Getsockname(int(pk.fd))), raddr: peerAddr(t, pk)}
	}
	s.mu.Lock()
	if t != nil {
		t.conn, t.bare = conn, nil
	}
	closed := s.connsClosed
	s.mu.Unlock()
	pk.conn = conn
	f.Close()
	if spare != nil {
		spare.restoreSpare()
	}
	if closed {
		conn.Close()
	}
	return conn
}

// sendNow writes what of p fd's socket buffer takes at once (send(2),
// MSG_DONTWAIT): 0 and no error when it takes nothing (EAGAIN). The
// caller holds s.mu, so fd is not closed meanwhile.
func sendNow(fd int, p []byte) (int, error) {
	for {
		n, err := unix.SendmsgN(fd, p, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		}
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("sendmsg", err)}
	}
}

// waitWritable waits up to d for fd's socket to take bytes (poll(2),
// blocking its thread: for Write out of descriptors only). s.mu is not
// held: fd may be closed, or even reused, meanwhile, which at worst ends
// the wait early; Write looks again under s.mu before it sends.
func waitWritable(fd int, d time.Duration) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		if _, err := unix.Poll(pfd, int(d.Milliseconds())); err != unix.EINTR {
			return
		}
	}
}

// lend makes a net.Conn of a copy of t's bare socket, with the server's
// keep-alive (as attach does), for Write to finish a write through;
// Close closes it (s.lent). The socket stays bare: closing the copy sends
// nothing. s.mu is held.
func (s *Server) lend(t *tracked) (net.Conn, error) {
	if s.connsClosed {
		return nil, net.ErrClosed
	}
	fd, err := unix.FcntlInt(uintptr(t.bare.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("write to a parked connection: %w", err)
	}
	f := os.NewFile(uintptr(fd), "parked socket")
	conn, err := net.FileConn(f) // a copy of the copy, in Go's poller
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("write to a parked connection: %w", err)
	}
	if err := DetectVanishedPeer(conn, s.KeepAlive, s.UserTimeout); err != nil {
		s.logger().Warn("vanished peers may hold this slot", "client", t.addr(), "err", err)
	}
	if s.lent == nil {
		s.lent = make(map[*tracked]net.Conn)
	}
	s.lent[t] = conn
	return conn, nil
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

// peerAddr is the client's address of a bare socket that cannot be made
// a net.Conn again: getpeername's, or, when the socket has lost its peer
// (reset), its source's address (exact for IPv4, the /64 for IPv6) with
// the port detach kept.
func peerAddr(t *tracked, pk *parked) net.Addr {
	if sa, err := unix.Getpeername(int(pk.fd)); err == nil {
		return sockAddr(sa, nil)
	}
	if t == nil || !t.key.IsValid() {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(t.key.Addr(), pk.port))
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
