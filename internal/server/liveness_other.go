//go:build !linux

package server

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not available:
// keep-alive's probe count alone ends an idle connection to a vanished
// peer, and a reply in flight is bounded by the kernel's retransmission
// limit and the handler's write deadline.
func setUserTimeout(*net.TCPConn, time.Duration) error { return nil }
