// Package tcpsock reads and sets what the kernel holds for one TCP
// connection, for the three pairs and the lessons: its statistics
// (TCP_INFO, the send and receive queues) and the options a server sets
// on it beyond package net's own (the user timeout that goes with
// keep-alive probes, quick acknowledgements, corking, a close that
// resets, through TLS too), and AwaitAcked, the one wait until the
// peer's kernel has acknowledged everything sent.
//
// What these are for is written where they are used: the end of a
// message without a terminator (stream.EndWait), tms's guessed ends and
// its FIN (multicopy), svr's answer that must not outlive its write
// timeout in an orphaned socket (status), a vanished peer
// (server.DetectVanishedPeer). Here is only how each fact is read or set.
//
// On Linux everything works. Elsewhere the statistics are not available
// (ReadStats returns ErrNoStats), the options Linux alone has do nothing,
// and AwaitAcked returns at once, as if the peer had everything: the
// callers then behave as they did before they looked at the socket.
//
// Listening sockets (TCP_DEFER_ACCEPT, SO_ACCEPTCONN) belong to
// internal/endpoint, which opens them.
package tcpsock

import (
	"crypto/tls"
	"net"
)

// TCPConn is the TCP connection under conn, under a TLS connection (or
// any wrapper with a NetConn method) too, and whether there is one.
func TCPConn(conn net.Conn) (*net.TCPConn, bool) {
	tc := tcpConn(conn)
	return tc, tc != nil
}

func tcpConn(conn net.Conn) *net.TCPConn {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c
		case *tls.Conn:
			conn = c.NetConn()
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil
		}
	}
}

// Reset makes conn's coming close a reset (SO_LINGER with a zero
// timeout) instead of a FIN after the data still queued.
//
// A handler calls it after giving up on a peer that stopped reading: the
// kernel then drops what is still queued for that peer at once, instead of
// keeping it (up to the send buffer, megabytes) in an orphaned socket that
// probes the peer's zero window for minutes after the server has moved on.
// Over TLS it arms the TCP connection beneath. For a connection that is
// not TCP it does nothing.
func Reset(conn net.Conn) {
	if tc := tcpConn(conn); tc != nil {
		tc.SetLinger(0)
	}
}

// CloseWithFIN undoes Reset: conn's close is again the ordinary one, a
// FIN after the data still queued, which the kernel goes on sending after
// the close.
func CloseWithFIN(conn net.Conn) {
	if tc := tcpConn(conn); tc != nil {
		tc.SetLinger(-1)
	}
}
