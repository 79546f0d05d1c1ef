package server

import (
	"errors"
	"syscall"
)

// isTemporaryErrno reports accept errors that say nothing about the listener
// itself: the process or system ran out of descriptors or memory, or the peer
// reset the connection before accept returned it.
func isTemporaryErrno(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR:
		return true
	}
	return false
}
