//go:build !unix

package endpoint

import "net"

// firstByteIsTLS cannot peek here: the handshake decides.
func firstByteIsTLS(net.Conn) (bool, error) { return true, nil }
