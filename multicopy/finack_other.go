//go:build !linux

package multicopy

import (
	"net"
)

// finAcked cannot look at the socket's state here: the half-close is
// taken as the end, as before the check.
func finAcked(net.Conn, int64) (bool, error) { return true, nil }
