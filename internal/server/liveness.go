package server

import (
	"fmt"
	"net"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// Defaults for finding a peer that vanished: a machine that lost power, a
// cable pulled, a NAT or firewall that forgot the flow. Such a peer sends
// neither FIN nor RST; without these, its slot is held until a read
// timeout (strsvr: 30 minutes) when the connection is idle, or for the
// kernel's retransmission limit (tcp_retries2: about 15 minutes, 938 s
// measured) when a reply is in flight. With them it is freed within
// DefaultUserTimeout (45 s) of the peer's last word either way, while a
// live peer's kernel answers the probes for as long as its user thinks.
var DefaultKeepAlive = net.KeepAliveConfig{
	Enable: true,
	// First probe after 15 s of silence (Go's own default idle), then
	// one every 5 s.
	Idle:     15 * time.Second,
	Interval: 5 * time.Second,
	// Where TCP_USER_TIMEOUT is not available, 6 unanswered probes end
	// the connection: 15 s + 6 × 5 s = 45 s, as with it.
	Count: 6,
}

// DefaultUserTimeout is how long sent data (or, with keep-alive, the
// peer's silence) may go unacknowledged before the kernel ends the
// connection: TCP_USER_TIMEOUT (RFC 5482), Linux only. 45 s rides out
// a few lost packets on any link, and frees the slot of a vanished peer
// well within a minute.
const DefaultUserTimeout = 45 * time.Second

// userTimeoutMargin is how much longer than a server's write timeout
// TCP_USER_TIMEOUT is, at least: a stalled reader's window closes before
// the server's writes stop making progress (they still fill the send
// buffer), so the write timeout must be given room to fire first.
const userTimeoutMargin = 15 * time.Second

// UserTimeoutFor is the TCP_USER_TIMEOUT for a server that drops a client
// whose writes make no progress for writeTimeout: DefaultUserTimeout, or
// writeTimeout plus a margin when that is longer. With TCP_USER_TIMEOUT set,
// Linux (since 5.11) also ends a connection whose peer keeps its receive
// window closed that long, although the peer answers every probe: a live
// reader that pauses (a pager, Ctrl-Z). Shorter than the write timeout,
// it would end such a reader first, with "connection timed out", and
// overrule the write timeout the operator chose (measured: tms --keep
// --write-timeout 3m dropped a paused reader after 48 s). At the servers'
// default write timeouts (10 s, 30 s) it is DefaultUserTimeout.
func UserTimeoutFor(writeTimeout time.Duration) time.Duration {
	return max(DefaultUserTimeout, writeTimeout+userTimeoutMargin)
}

// DetectVanishedPeer sets conn up to fail, instead of waiting for ever,
// when its peer vanishes: TCP keep-alive probes as ka says, and
// TCP_USER_TIMEOUT as userTimeout says. A zero ka means DefaultKeepAlive;
// a ka with Enable false and any other field set turns probes off. A zero
// userTimeout means DefaultUserTimeout, a negative one leaves the
// kernel's. A connection that is not TCP is left alone.
//
// With TCP_USER_TIMEOUT set, Linux ends an idle connection at the first
// keep-alive probe sent userTimeout or more after the peer was last heard
// (Count no longer matters), and a connection with data in flight once
// that data has gone unacknowledged for userTimeout. The read or write
// then fails with "connection timed out", the handler returns, and the
// slot is free. The defaults here are the servers' policy; the options
// are set by internal/tcpsock, with the other facts of a socket.
func DetectVanishedPeer(conn net.Conn, ka net.KeepAliveConfig, userTimeout time.Duration) error {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	if ka == (net.KeepAliveConfig{}) {
		ka = DefaultKeepAlive
	}
	if err := tc.SetKeepAliveConfig(ka); err != nil {
		return fmt.Errorf("set keep-alive: %w", err)
	}
	if userTimeout == 0 {
		userTimeout = DefaultUserTimeout
	}
	if userTimeout > 0 {
		if err := tcpsock.SetUserTimeout(tc, userTimeout); err != nil {
			return fmt.Errorf("set TCP_USER_TIMEOUT: %w", err)
		}
	}
	return nil
}
