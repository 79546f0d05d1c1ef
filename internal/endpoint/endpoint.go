// Package endpoint turns what a user types (a port, a host) into listeners
// and connections, and turns the socket errors that can come back into one
// clear line: "listen :2000: address already in use", not Go's
// "listen tcp :2000: bind: address already in use" with its layers.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// ParsePort parses a TCP/UDP port number as typed on a command line.
// Port 0 is accepted: it asks the kernel for an ephemeral port, which tests
// and the demo use.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("invalid port %q: want a number from 0 to 65535", s)
	}
	return p, nil
}

// Listen listens for TCP on addr (":2000" is every interface, IPv4 and
// IPv6, as the tutorial's empty host is). The error names the address and the
// cause only. Accepted connections keep Go's TCP keep-alive probes, which
// find a peer that vanished without a word (internal/server tunes them, and
// TCP_USER_TIMEOUT, on each connection it serves: see
// server.DetectVanishedPeer).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	return listen(ctx, addr, streamConfig)
}

// ListenForRequests is Listen for a server whose every connection carries
// one request and its answer, the client speaking first (tms, svr). Go's
// keep-alive setup on accept is off, since internal/server sets its own on
// each connection it serves (server.DetectVanishedPeer); and accept is
// deferred until the request's first bytes arrive (see deferAccept).
func ListenForRequests(ctx context.Context, addr string) (net.Listener, error) {
	return listen(ctx, addr, requestsConfig)
}

// The socket options of Listen and ListenForRequests, also applied to a
// listening socket systemd passes (see Activated).
var (
	streamConfig   = net.ListenConfig{}
	requestsConfig = net.ListenConfig{KeepAlive: -1, Control: deferAccept}
)

func listen(ctx context.Context, addr string, lc net.ListenConfig) (net.Listener, error) {
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, Cause(err))
	}
	return ln, nil
}

// Dial connects to host:port within timeout (zero means no limit beyond the
// kernel's). Names, IPv4 and IPv6 literals are accepted; every address a name
// resolves to is tried in turn, as net.Dialer does. Under a context from
// WithTLS the connection is TLS, its handshake done within ctx.
func Dial(ctx context.Context, host, port string, timeout time.Duration) (net.Conn, error) {
	addr := net.JoinHostPort(host, port)
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, DialError(addr, err, timeout)
	}
	return dialTLS(ctx, conn, host, addr)
}

// ErrConnect is matched (errors.Is) by DialError's errors, and so by every
// error of Dial that came before a connection was made: the name did not
// resolve, or the connection was refused, unreachable or timed out. A TLS
// handshake that fails after the connection is not one.
var ErrConnect = errors.New("connect failed")

// connectError is DialError's error: its text, and ErrConnect to match.
type connectError struct{ err error }

func (e connectError) Error() string        { return e.err.Error() }
func (e connectError) Unwrap() error        { return e.err }
func (e connectError) Is(target error) bool { return target == ErrConnect }

// DialError describes a failed connect to addr in one line:
// "unknown host nosuch.example", "connect 127.0.0.1:9: connection refused",
// "connect 10.1.2.3:80: timed out after 5s". It matches ErrConnect.
func DialError(addr string, err error, timeout time.Duration) error {
	return connectError{dialError(addr, err, timeout)}
}

func dialError(addr string, err error, timeout time.Duration) error {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return fmt.Errorf("unknown host %s", dnsErr.Name)
		}
		return fmt.Errorf("look up %s: %s", dnsErr.Name, dnsErr.Err)
	}
	if IsTimeout(err) {
		if timeout > 0 {
			return fmt.Errorf("connect %s: timed out after %s", addr, timeout)
		}
		return fmt.Errorf("connect %s: timed out", addr)
	}
	return fmt.Errorf("connect %s: %w", addr, Cause(err))
}

// IsTimeout reports whether err is a deadline or timeout error.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// Cause strips the *net.OpError and *os.SyscallError layers from err and
// returns the innermost error (usually a syscall.Errno such as
// ECONNREFUSED), so messages read "connection refused" and errors.Is still
// works on the result.
func Cause(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// StopOnCancel makes every blocked and later read and write on conn fail
// at once (with os.ErrDeadlineExceeded) when ctx ends, by moving conn's
// deadline to the past: Go has no other way to interrupt a Read. The
// returned stop, like context.AfterFunc's, undoes the arrangement and
// reports whether it did so before ctx ended; call it when done with conn.
func StopOnCancel(ctx context.Context, conn net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}
