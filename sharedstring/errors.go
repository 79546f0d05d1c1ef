package sharedstring

import (
	"errors"
	"io"
	"syscall"
)

// isEOF reports whether err means the peer closed its side (cleanly or by
// a reset).
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
