//go:build !linux

package tcpsock

import (
	"net"
	"time"
)

// Cork does nothing where TCP_CORK is not available: an answer and the
// FIN may then leave in separate segments, which costs time, not bytes.
func Cork(net.Conn) {}

// QuickAck does nothing where TCP_QUICKACK is not known.
func QuickAck(net.Conn) {}

// SetUserTimeout does nothing where TCP_USER_TIMEOUT is not available:
// keep-alive's probe count alone ends an idle connection to a vanished
// peer, and a reply in flight is bounded by the kernel's retransmission
// limit and the writer's deadline.
func SetUserTimeout(*net.TCPConn, time.Duration) error { return nil }

// sendQueue cannot be read here: AwaitAcked returns at once.
func sendQueue(*net.TCPConn) (queue, bool) { return queue{}, false }
