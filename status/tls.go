package status

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/stream"
)

// NotTLSAnswer is the one line a plaintext client of a TLS service reads
// (see Service.TLS) before the close.
const NotTLSAnswer = "this server speaks TLS only (tcplab wps --tls-ca FILE)\n"

// handshake makes conn TLS for a client that Nets allows (a client that
// will be refused costs no handshake), after a handshake rate limit per
// address: twice the request limit (Limiter's rate and burst), per IPv4
// address or IPv6 /64 (as every per-address rule: server.Source). A client a little over the
// request limit so still gets the readable "rate limit exceeded" (which
// needs a handshake to be sent), while a flood from one address, each
// connection costing a public-key signature, is closed before any.
//
// The handshake runs within ReadTimeout, in the connection's own slot of
// the server, so it counts against every cap; a client that fails it
// (plaintext, no certificate, a certificate from another CA) is logged and
// closed without an answer, and nothing runs for it. A plaintext client
// gets NotTLSAnswer, so a plaintext wps prints why instead of an empty
// answer.
func (s *Service) handshake(ctx context.Context, conn net.Conn) (net.Conn, bool) {
	if l := s.handshakeLimiter(); l != nil && !l.Allow(remoteAddr(conn)) {
		s.logger().Info("client refused", "addr", conn.RemoteAddr().String(), "err", "over the handshake rate limit")
		return nil, false
	}
	timeout := s.timeout(s.ReadTimeout, DefaultReadTimeout)
	tc, err := endpoint.Handshake(ctx, conn, s.TLS, timeout)
	if err != nil {
		s.logger().Info("client refused", "addr", conn.RemoteAddr().String(), "err", err.Error())
		if errors.Is(err, endpoint.ErrNotTLS) {
			// The request was only peeked at: read it before the close,
			// or the kernel makes the close a reset.
			conn.SetWriteDeadline(time.Now().Add(timeout))
			if stream.WriteFinal(conn, []byte(NotTLSAnswer)) == nil {
				conn.SetReadDeadline(time.Now().Add(lingerTimeout))
				io.CopyN(io.Discard, conn, lingerBytes)
			}
		}
		return nil, false
	}
	return tc, true
}

// handshakeLimiter is the handshake rate limit, made on first use from
// Limiter; nil when Limiter is.
func (s *Service) handshakeLimiter() *ClientLimiter {
	s.tlsOnce.Do(func() {
		if s.Limiter != nil {
			s.handshakes = NewClientLimiter(2*float64(s.Limiter.rate), 2*s.Limiter.burst)
		}
	})
	return s.handshakes
}
