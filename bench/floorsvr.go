//go:build linux

package main

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// The floor server: the least work a shared-string server can do per
// letter with the classic protocol, as a yardstick for the sharedstring
// section and not as a server anyone should run. One OS thread, one
// level-triggered epoll set, raw system calls: per letter one read(2), one
// writev(2) of v's prefixes and a share of one epoll_wait(2). It has none of
// what makes strsvr a server (no deadlines, no caps, no store interface, no
// back-pressure: a short write is ignored, which the bench's replies of at
// most 20 KB into a fresh socket buffer never cause), so its rate bounds
// what any server, in any language, can reach against this load generator
// on this machine.

// floorServe serves 127.0.0.1:port until the process is killed.
func floorServe(port int) error {
	runtime.LockOSThread()
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("bind 127.0.0.1:%d: %w", port, err)
	}
	if err := unix.Listen(lfd, 4096); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	events := make([]unix.EpollEvent, 1024)
	buf := make([]byte, 4096)
	iov := make([][]byte, 0, len(buf))
	var v []byte
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				for {
					cfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break // EAGAIN: no more pending connections
					}
					unix.SetsockoptInt(cfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, cfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(cfd)})
				}
				continue
			}
			m, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			if m <= 0 {
				unix.Close(fd) // end of file or an error: the client left
				continue
			}
			v = append(v, buf[:m]...)
			iov = iov[:0]
			for i := len(v) - m + 1; i <= len(v); i++ {
				iov = append(iov, v[:i])
			}
			unix.Writev(fd, iov)
		}
	}
}
