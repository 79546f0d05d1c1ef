package server

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// epollSet is the readiness set on Linux: one epoll instance, each parked
// socket armed once (EPOLLONESHOT) for input, the peer's close or an
// error, and an eventfd to wake the waiting goroutine early. The sockets
// stay in the runtime's own poller as well: epoll lets a descriptor be in
// several sets, and each reports its events on its own.
type epollSet struct {
	ep, ev int
	events []unix.EpollEvent
	// spare is a descriptor held in reserve (/dev/null), -1 when none:
	// making a bare socket a net.Conn again needs one more for a moment
	// (see lendSpare).
	spareMu sync.Mutex
	spare   int
}

// wakeToken marks the eventfd's events; no parked socket's token is all
// ones (its low half is a file descriptor, never -1).
const wakeToken = ^uint64(0)

func newReadySet() readySet {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	ev, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil
	}
	e := &epollSet{ep: ep, ev: ev, events: make([]unix.EpollEvent, 256), spare: -1}
	e.spare, _ = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ev, epollEvent(unix.EPOLLIN, wakeToken)); err != nil {
		e.close()
		return nil
	}
	return e
}

func epollEvent(events uint32, token uint64) *unix.EpollEvent {
	ev := &unix.EpollEvent{Events: events}
	// Fd and Pad together are the kernel's 64-bit data field.
	ev.Fd = int32(uint32(token))
	ev.Pad = int32(uint32(token >> 32))
	return ev
}

func (e *epollSet) arm(fd int, token uint64) error {
	ev := epollEvent(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT, token)
	// A socket parked before is still in the set, disarmed; one closed
	// since has left it by itself.
	err := unix.EpollCtl(e.ep, unix.EPOLL_CTL_MOD, fd, ev)
	if errors.Is(err, unix.ENOENT) {
		err = unix.EpollCtl(e.ep, unix.EPOLL_CTL_ADD, fd, ev)
	}
	return err
}

func (e *epollSet) wait(tokens []uint64, timeout time.Duration) ([]uint64, error) {
	ms := -1
	if timeout >= 0 {
		// Round up, so a deadline is never woken for early.
		ms = int(min((timeout+time.Millisecond-1)/time.Millisecond, 1<<30))
	}
	n, err := unix.EpollWait(e.ep, e.events, ms)
	tokens = tokens[:0]
	if errors.Is(err, unix.EINTR) {
		return tokens, nil
	}
	if err != nil {
		return tokens, err
	}
	for _, ev := range e.events[:n] {
		t := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		if t == wakeToken {
			var b [8]byte
			unix.Read(e.ev, b[:])
			continue
		}
		tokens = append(tokens, t)
	}
	return tokens, nil
}

func (e *epollSet) wake() {
	one := [8]byte{1}
	unix.Write(e.ev, one[:]) // little-endian 1; EAGAIN: already pending
}

func (e *epollSet) forget(fd int) {
	unix.EpollCtl(e.ep, unix.EPOLL_CTL_DEL, fd, nil)
}

func (e *epollSet) close() {
	unix.Close(e.ev)
	unix.Close(e.ep)
	e.spareMu.Lock()
	if e.spare >= 0 {
		unix.Close(e.spare)
		e.spare = -1
	}
	e.spareMu.Unlock()
}

// lendSpare frees the descriptor held in reserve, for a caller out of
// descriptors, and reports whether it had one; the caller then calls
// restoreSpare once it has given up a descriptor of its own, and no one
// else borrows it meanwhile. The accept loop, out of descriptors too,
// waits before it tries again, so the freed slot is the caller's.
func (e *epollSet) lendSpare() bool {
	e.spareMu.Lock()
	if e.spare < 0 {
		e.spareMu.Unlock()
		return false
	}
	unix.Close(e.spare)
	e.spare = -1
	return true
}

// restoreSpare takes a descriptor in reserve again, after lendSpare.
func (e *epollSet) restoreSpare() {
	e.spare, _ = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if e.spare < 0 {
		e.spare = -1
	}
	e.spareMu.Unlock()
}

// readableNow reports whether fd has bytes to read (or its peer closed, or
// it failed) at this moment, without waiting.
func readableNow(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}
