//go:build !linux

package tcpsock

import "net"

func readStats(net.Conn) (Stats, error) { return Stats{}, ErrNoStats }
