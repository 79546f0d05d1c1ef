//go:build !unix

package endpoint

import "net"

// firstByteIsTLS cannot peek here: the handshake decides.
func firstByteIsTLS(net.Conn) (bool, error) { return true, nil }

// isListening cannot ask here; accept will tell.
func isListening(*net.TCPListener) (bool, error) { return true, nil }
