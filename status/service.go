package status

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/stream"
)

// Defaults for a Service's zero fields.
const (
	DefaultReadTimeout  = 5 * time.Second
	DefaultQuietGap     = 100 * time.Millisecond
	DefaultWriteTimeout = 10 * time.Second
	// lingerTimeout and lingerBytes bound the read after the answer that
	// lets a client's late bytes (a "\n" after "ps") arrive before the close,
	// so the kernel does not answer them with a reset that could destroy
	// output the client has not read yet.
	lingerTimeout = time.Second
	lingerBytes   = 4096
)

// DefaultMaxConnsPerAddr is svr's cap on the connections one address
// holds at once (internal/server's MaxConnsPerAddr). A request lasts
// milliseconds and the rate limit lets one address make 40 in a burst, so
// honest clients from one address (a fleet view holds one per host, a NAT
// a few) stay far below 64, while connections that say nothing, held up to
// the read timeout each, can take no more than 64 of the 1,000 slots: the
// clients of every other address are still served at once.
//
// With fewer slots than 256 in all, Configure gives a quarter of them
// instead, so that one address never holds more than a quarter.
const DefaultMaxConnsPerAddr = 64

// DefaultMaxConns is svr's cap on the connections served at once.
const DefaultMaxConns = 1000

// DefaultGrace is the grace period Configure gives the requests in
// flight when a stop comes (server.Server.Grace), as svr's --grace.
const DefaultGrace = 10 * time.Second

// Configure implements server.Configurer: the caps and manners of the
// server.Server that serves s, where the caller left them zero.
//
//   - MaxConns: DefaultMaxConns.
//   - MaxConnsPerAddr: DefaultMaxConnsPerAddr, or a quarter of MaxConns
//     (at least 1) if that is less, as internal/server's own default.
//   - Refuse: the line "busy: ..." (server.RefuseLine).
//   - Grace: DefaultGrace.
//
// And always EvictWaiting: a full svr makes room for a client that asks
// by closing the connection that has waited longest for its request, of
// the address with the most waiting (ServeConn says when a request is
// complete, server.Busy).
func (s *Service) Configure(srv *server.Server) {
	if srv.MaxConns == 0 {
		srv.MaxConns = DefaultMaxConns
	}
	if srv.MaxConnsPerAddr == 0 {
		srv.MaxConnsPerAddr = min(DefaultMaxConnsPerAddr, max(1, srv.MaxConns/4))
	}
	if srv.Refuse == nil {
		srv.Refuse = server.RefuseLine
	}
	if srv.Grace == 0 {
		srv.Grace = DefaultGrace
	}
	srv.EvictWaiting = true
}

var (
	_ server.Handler    = (*Service)(nil)
	_ server.Configurer = (*Service)(nil)
	_ server.Validator  = (*Service)(nil)
)

// Validate implements server.Validator: it checks s's fields (and its
// Runner's) and names the first that is out of range. A client is never
// trusted, so no timeout may be none.
func (s *Service) Validate(*server.Server) error {
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"ReadTimeout", s.ReadTimeout}, {"QuietGap", s.QuietGap}, {"WriteTimeout", s.WriteTimeout}} {
		if t.d < 0 {
			return server.Invalid("{%s} must be positive, not %s", t.name, t.d)
		}
	}
	if s.Runner != nil {
		return s.Runner.Validate()
	}
	return nil
}

// Service is the svr protocol as an internal/server Handler (and
// Configurer and Validator): read one request, answer it, close. Every
// field's zero value is its documented default (see internal/server's
// conventions); the zero Service refuses every name, since its allow-list is
// empty.
type Service struct {
	// Allow is the allow-list; nil allows nothing.
	Allow *AllowList
	// Runner runs the allowed entries; nil means a Runner with the
	// defaults, made on first use.
	Runner *Runner
	// Nets, if not empty, restricts clients to these networks; others are
	// closed at once, unanswered.
	Nets []netip.Prefix
	// Limiter, if set, bounds requests per client address.
	Limiter *ClientLimiter
	// ReadTimeout bounds the wait for the request; QuietGap is how long a
	// pause after the first bytes ends an unterminated name (see the package
	// comment); WriteTimeout bounds sending the answer. Zero means the
	// defaults.
	ReadTimeout, QuietGap, WriteTimeout time.Duration
	// Logger gets one record per client ("client is at") and problems.
	// Nil discards.
	Logger *slog.Logger
	// ClientLog, if set, gets the tutorial's own line "client is at ADDR"
	// for each client, instead of the Logger record.
	ClientLog io.Writer
	// Metrics, if set, counts requests.
	Metrics *Metrics
	// TLS, if set, makes the service TLS only, with this configuration
	// (endpoint.TLSServer's, which a reload changes for the handshakes
	// that follow): see handshake for what a client must pass first.
	TLS *tls.Config

	logMu      sync.Mutex
	tlsOnce    sync.Once
	handshakes *ClientLimiter
	runOnce    sync.Once
	defRunner  *Runner
}

func (s *Service) runner() *Runner {
	if s.Runner != nil {
		return s.Runner
	}
	s.runOnce.Do(func() { s.defRunner = &Runner{} })
	return s.defRunner
}

// Result names what happened to a request, for logs and metrics.
const (
	resultOK      = "ok"
	resultUnknown = "unknown"   // not on the allow-list (or too long)
	resultDenied  = "denied"    // address not in Nets
	resultLimited = "limited"   // over the rate limit
	resultError   = "error"     // the command failed
	resultNoName  = "no_name"   // closed or timed out before a name
	resultWriteTO = "write_err" // the answer could not be sent
	resultNoTLS   = "tls_fail"  // the TLS handshake failed or was over its limit
)

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ServeConn serves one connection: Service is an internal/server Handler.
// Until the client's first bytes (its request, or its TLS hello) come, the
// connection is parked (server.ParkSocket): a client that connects and says
// nothing holds no goroutine, within ReadTimeout of its accept as before.
func (s *Service) ServeConn(ctx context.Context, conn net.Conn) {
	accepted := time.Now()
	if s.Metrics != nil {
		// Open from the accept, parked or not: serveConn, which every
		// connection reaches (Park calls it when the client speaks, its
		// time is up or the server closes), ends the count.
		s.Metrics.open.Inc()
	}
	if s.TLS == nil {
		// Said at the accept, as before parking: a client that says
		// nothing is still seen to be there.
		s.clientIsAt(conn)
	}
	serve := func(ctx context.Context, conn net.Conn) { s.serveConn(ctx, conn, accepted) }
	if server.ParkSocket(ctx, conn, accepted.Add(s.timeout(s.ReadTimeout, DefaultReadTimeout)), serve) {
		return
	}
	serve(ctx, conn)
}

// clientIsAt says where a client is, as svr.py does.
func (s *Service) clientIsAt(conn net.Conn) {
	if s.ClientLog != nil {
		s.logMu.Lock()
		fmt.Fprintf(s.ClientLog, "client is at %s\n", conn.RemoteAddr())
		s.logMu.Unlock()
	} else {
		s.logger().Info("client is at", "addr", conn.RemoteAddr().String())
	}
}

// serveConn is ServeConn once the client has sent something, or its time
// to has passed.
func (s *Service) serveConn(ctx context.Context, conn net.Conn, accepted time.Time) {
	if s.Metrics != nil {
		defer s.Metrics.open.Dec()
	}
	if s.TLS != nil && s.allowed(remoteAddr(conn)) {
		tc, ok := s.handshake(ctx, conn)
		if !ok {
			// Logged under the log limit; counted here exactly.
			if s.Metrics != nil {
				s.Metrics.observe("other", resultNoTLS, time.Since(accepted))
			}
			return
		}
		conn = tc
	}
	addr := remoteAddr(conn)
	if s.TLS != nil {
		s.clientIsAt(conn)
	}
	name, result := s.serve(ctx, conn, addr, accepted)
	if s.Metrics != nil {
		s.Metrics.observe(name, result, time.Since(accepted))
	}
	if result != resultOK {
		s.logger().Debug("request", "addr", conn.RemoteAddr().String(), "result", result)
	}
}

// serve does the work of ServeConn and returns the command (or "other") and
// the result for the metrics.
func (s *Service) serve(ctx context.Context, conn net.Conn, addr netip.Addr, accepted time.Time) (string, string) {
	if !s.allowed(addr) {
		return "other", resultDenied
	}
	if s.Limiter != nil && !s.Limiter.Allow(addr) {
		s.answer(ctx, conn, []byte("rate limit exceeded; try again later\n"))
		return "other", resultLimited
	}
	raw, err := readRequest(ctx, conn, s.Allow, s.timeout(s.ReadTimeout, DefaultReadTimeout), s.timeout(s.QuietGap, DefaultQuietGap), accepted)
	if err != nil {
		return "other", resultNoName
	}
	// The request is complete: a server full of silent connections
	// (server.Server.EvictWaiting) no longer closes this one for another.
	server.Busy(ctx)
	req := parseRequest(raw, s.Allow)
	if req.Command == nil {
		s.answer(ctx, conn, []byte(req.Refusal(s.Allow)))
		return "other", resultUnknown
	}
	out, err := s.runner().Output(ctx, req.Command)
	if err != nil {
		s.logger().Warn("command failed", "command", req.Command.name, "err", err)
		s.answer(ctx, conn, []byte(fmt.Sprintf("error: %v\n", err)))
		return req.Command.name, resultError
	}
	if !s.answer(ctx, conn, out) {
		return req.Command.name, resultWriteTO
	}
	return req.Command.name, resultOK
}

func (s *Service) timeout(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Service) allowed(addr netip.Addr) bool {
	if len(s.Nets) == 0 {
		return true
	}
	for _, n := range s.Nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// answer sends p and waits for the client to take it, all within
// WriteTimeout (see awaitTaken); a client that has not taken everything by
// then is reset, so no answer stays queued in the kernel after the
// timeout. It then lingers briefly for the client's close (see
// lingerTimeout), a courtesy a full server may cut short to make room
// (server.Answered).
func (s *Service) answer(ctx context.Context, conn net.Conn, p []byte) bool {
	deadline := time.Now().Add(s.timeout(s.WriteTimeout, DefaultWriteTimeout))
	conn.SetWriteDeadline(deadline)
	if err := stream.WriteFinal(conn, p); err != nil || !awaitTaken(conn, deadline) {
		reset(conn) // drop the rest of the answer now, not from an orphaned socket
		return false
	}
	server.Answered(ctx)
	conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, conn, lingerBytes)
	return true
}

// reset makes conn's coming close a reset (tcpsock.Reset), under TLS too.
func reset(conn net.Conn) { tcpsock.Reset(conn) }

// readRequest reads one request from conn by the rules of the package
// comment (stream.ReadMessage with svr's rule) and returns its raw bytes
// (at most MaxRequest+1, through the terminator if one came). It returns
// an error when the client sent nothing before closing or before timeout
// passed.
func readRequest(ctx context.Context, conn net.Conn, allow *AllowList, timeout, quiet time.Duration, start time.Time) ([]byte, error) {
	return stream.ReadMessage(ctx, conn, stream.MessageEnd{
		Max:      MaxRequest + 1,                                              // rule 5
		Complete: func(name []byte) bool { return allow.Lookup(name) != nil }, // rule 2
		Gap:      quiet,
		Timeout:  timeout,
		Start:    start,
		Partial:  true,
	})
}

// remoteAddr is the client's IP address, IPv4 in IPv6 unmapped so that
// --allow 127.0.0.0/8 matches either.
func remoteAddr(conn net.Conn) netip.Addr {
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
