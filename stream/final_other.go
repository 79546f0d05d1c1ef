//go:build !linux

package stream

import "net"

// cork does nothing where TCP_CORK is not available: the answer and the
// FIN may then leave in separate segments, which costs time, not bytes.
func cork(net.Conn) {}

// quickAck does nothing where TCP_QUICKACK is not known.
func quickAck(net.Conn) {}
