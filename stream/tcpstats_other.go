//go:build !linux

package stream

import "net"

func readTCPStats(net.Conn) (TCPStats, error) { return TCPStats{}, ErrNoTCPStats }
