// Package multicopy is the tutorial's first client/server pair (section 2,
// tms.py and tmc.py): the client sends a string, the server sends it back
// many times over, and the client reads until end of file, reporting each
// chunk. Its lesson is that TCP is one byte stream that arrives in chunks of
// the network's choosing.
//
// # Wire format
//
// Client to server: the message M, a run of bytes with no length prefix and
// no required terminator. The tutorial's client sends "abc" and then only
// reads, without half-closing, so the server has to decide where M ends. It
// ends at the first of:
//
//   - a newline byte ('\n', kept as part of M), for nc and line-minded clients;
//   - the client's half-close (end of file);
//   - MaxMessage bytes (the tutorial's recv(1000000));
//   - a quiet gap (Server.QuietGap) with no new bytes, once at least one
//     byte has arrived, and only when TCP cannot still be delivering the
//     message: on a link that has shown loss or slowness the quiet must
//     last several retransmission timeouts (stream.EndWait), so a lost
//     segment that will be sent again does not cut the message.
//
// A client whose message is not complete within Server.ReadTimeout of the
// connection is dropped with a reset (not a FIN, which would read as an
// empty answer), whether it sent nothing or is still trickling bytes in (a
// slowloris): the quiet gap alone would let one byte every 49 ms hold a
// connection for hours.
//
// Server to client: M repeated Server.Copies times (10,000 by default), then
// the server closes the connection; end of file is the only end marker.
//
// Nothing else is on the wire, so the tutorial's Python programs and these
// interoperate in both directions.
package multicopy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/stream"
)

// Defaults, as in the tutorial where it has a value.
const (
	// DefaultCopies is how many copies tms.py sends ("data = 10000 * data").
	DefaultCopies = 10000
	// MaxMessage bounds the message, as the tutorial's conn.recv(1000000).
	MaxMessage = 1_000_000
	// DefaultQuietGap ends a message that has no terminator. A client's
	// single write arrives on loopback in well under a millisecond and on a
	// LAN in a few; 50 ms is long enough not to cut one write in two and
	// short enough not to be noticed.
	DefaultQuietGap = 50 * time.Millisecond
	// DefaultReadTimeout drops a client whose message is not complete this
	// long after it connected.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteIdle drops a client that stops reading: no write progress
	// for this long ends the transfer.
	DefaultWriteIdle = 30 * time.Second
)

// ErrNoMessage is returned when a client closes or times out before sending
// a single byte; a caller of Echo tells it with errors.Is.
var ErrNoMessage = stream.ErrNoMessage

// readMessage reads the client's message by the rule in the package
// documentation. It never returns more than max bytes, takes a quiet spell
// of gap after the last byte as the end only when the socket shows no
// retransmission can still be due (stream.EndWait; on a clean link that is
// gap itself), and never takes longer than timeout in all: a message still
// arriving when timeout ends is an error, not a message, so a client
// cannot hold the connection by trickling bytes.
// It gives up when ctx ends. It is stream.ReadMessage with tms's rule.
func readMessage(ctx context.Context, conn net.Conn, max int, gap, timeout time.Duration, start time.Time) ([]byte, error) {
	msg, err := stream.ReadMessage(ctx, conn, stream.MessageEnd{Max: max, Gap: gap, Timeout: timeout, Start: start, Settle: true})
	if err != nil && ctx.Err() == nil && !errors.Is(err, stream.ErrNoMessage) && !errors.Is(err, stream.ErrMessageTimeout) {
		err = plain(err)
	}
	return msg, err
}

// Server is tms, the protocol handler: Echo serves the multicopy echo on
// one connection and reports the transfer; ServeConn (what internal/server
// calls for each client) echoes and logs the outcome. The zero value uses
// the defaults above.
type Server struct {
	// Copies is how many times the message is sent back; 0 means
	// DefaultCopies.
	Copies int64
	// QuietGap, ReadTimeout and WriteIdle: see the Default constants,
	// which zero means.
	QuietGap    time.Duration
	ReadTimeout time.Duration
	WriteIdle   time.Duration
	// GoAhead, if set, is called after the message is read and before it is
	// sent back: tms.py's raw_input(), which shows that the client blocks in
	// recv() until the server sends. Its error aborts the transfer.
	GoAhead func(ctx context.Context, msg []byte) error
	// ClientLog, if set, receives tms.py's "client is at ADDR" line for
	// each client ServeConn serves.
	ClientLog io.Writer
	// Logger receives one line per transfer. Nil discards.
	Logger *slog.Logger
}

// Transfer describes one served client.
type Transfer struct {
	Message []byte
	Sent    int64
	Elapsed time.Duration // from the end of the message to the close
}

// ErrCutShort is wrapped by Echo's error when the transfer was stopped
// (the server is shutting down) before every copy was sent; a caller of
// Echo tells it with errors.Is.
var ErrCutShort = errors.New("transfer cut short: the connection is reset")

// Echo serves one client on conn: read the message, wait for the
// go-ahead, send the copies. It does not close conn.
//
// Until every copy has been sent, conn is set to close with a reset
// (SO_LINGER 0), not a FIN: whoever closes it (the caller, or a server
// stopping past its grace period), a client then sees "connection reset",
// never an end of file that looks like a complete answer. After the last
// copy the ordinary close is restored, so a complete answer ends with FIN.
func (s *Server) Echo(ctx context.Context, conn net.Conn) (Transfer, error) {
	return s.echo(ctx, conn, time.Now())
}

// echo is Echo for a connection accepted at start, from which
// ReadTimeout runs.
func (s *Server) echo(ctx context.Context, conn net.Conn, start time.Time) (Transfer, error) {
	var t Transfer
	endpoint.Reset(conn)
	// Stop a transfer in flight, or a message still arriving, when the
	// server is closed (SIGINT in the one-client mode).
	stop := endpoint.StopOnCancel(ctx, conn)
	defer stop()
	msg, err := readMessage(ctx, conn, MaxMessage, cmp.Or(s.QuietGap, DefaultQuietGap), cmp.Or(s.ReadTimeout, DefaultReadTimeout), start)
	if err != nil {
		if errors.Is(err, stream.ErrMessageTimeout) {
			// Tell the client, with a reset rather than the FIN of a
			// normal end, that its message was not served: a client that
			// cannot check its answer (tmc.py) would otherwise take an
			// empty one for success.
			endpoint.Reset(conn)
		}
		return t, fmt.Errorf("read message from %s: %w", conn.RemoteAddr(), err)
	}
	t.Message = msg
	copies := s.Copies
	if copies <= 0 {
		copies = DefaultCopies
	}
	if copies > math.MaxInt64/int64(len(msg)) {
		return t, fmt.Errorf("%d copies of %d bytes is more than %d bytes", copies, len(msg), int64(math.MaxInt64))
	}
	if s.GoAhead != nil {
		if err := s.GoAhead(ctx, msg); err != nil {
			if ctx.Err() != nil {
				return t, fmt.Errorf("%w: stopped before sending anything to %s", ErrCutShort, conn.RemoteAddr())
			}
			return t, fmt.Errorf("%w: before sending anything to %s: %w", ErrCutShort, conn.RemoteAddr(), err)
		}
	}
	sending := time.Now()
	t.Sent, err = stream.WriteRepeated(conn, msg, copies, cmp.Or(s.WriteIdle, DefaultWriteIdle))
	t.Elapsed = time.Since(sending)
	want := copies * int64(len(msg))
	if err != nil {
		if ctx.Err() != nil {
			return t, fmt.Errorf("%w: stopped after sending %d of %d bytes to %s", ErrCutShort, t.Sent, want, conn.RemoteAddr())
		}
		return t, fmt.Errorf("send to %s after %d of %d bytes: %w", conn.RemoteAddr(), t.Sent, want, plain(err))
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(-1) // complete: the close is an orderly FIN after the data
	}
	finish(ctx, conn, cmp.Or(s.WriteIdle, DefaultWriteIdle))
	return t, nil
}

// drainMax bounds what finish reads and drops: a client still sending
// after that much is not waiting for the end of the answer.
const drainMax = MaxMessage

// finish ends a complete transfer so that the client gets all of it and
// a FIN: it half-closes (the FIN goes after the last copy), then reads and
// drops whatever the client still sends (bytes after the newline that
// ended its message, say) until the client closes or has acknowledged
// the FIN (it then holds the whole answer and its end: nothing a reset
// does can take that away), for at most wait, or until ctx ends.
// Without it, closing a socket with unread bytes makes the kernel answer
// with a reset and drop the copies still queued to send: the client lost
// the end of an answer the server had logged as done.
func finish(ctx context.Context, conn net.Conn, wait time.Duration) {
	if err := stream.CloseWrite(conn); err != nil {
		return
	}
	end := time.Now().Add(wait)
	buf := make([]byte, 16<<10)
	for dropped := 0; dropped < drainMax; {
		// Short reads, so the acknowledgement is seen soon after it comes.
		if d := time.Now().Add(finishPoll); d.Before(end) {
			conn.SetReadDeadline(d)
		} else {
			conn.SetReadDeadline(end)
		}
		if ctx.Err() != nil {
			return // stopping: the deadline just set may have undone Echo's
		}
		n, err := conn.Read(buf)
		dropped += n
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(end):
			if finAcked(conn) {
				return
			}
		default:
			return // end of file, a reset, or wait is over
		}
	}
}

// finishPoll is how often finish looks whether the client has the FIN.
const finishPoll = 20 * time.Millisecond

// ServeConn serves one client with Echo and logs the outcome (a
// server.Handler); a client that fails costs nothing to the others. Until
// the client's first bytes come, its connection is parked (server.Park):
// a client that connects and says nothing holds no goroutine.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	s.clientIsAt(conn)
	start := time.Now()
	// A parked connection that the server closes must end with a reset
	// too (see Echo).
	endpoint.Reset(conn)
	serve := func(ctx context.Context, conn net.Conn) {
		t, err := s.echoLogged(ctx, conn, start)
		switch {
		case err == nil:
			s.logger().Info("transfer done", "client", conn.RemoteAddr().String(), "message_bytes", len(t.Message), "sent_bytes", t.Sent, "elapsed", t.Elapsed)
		case !errors.Is(err, ErrCutShort):
			s.logger().Info("transfer failed", "client", conn.RemoteAddr().String(), "err", err)
		}
	}
	if server.Park(ctx, conn, start.Add(cmp.Or(s.ReadTimeout, DefaultReadTimeout)), serve) {
		return
	}
	serve(ctx, conn)
}

// ServeOne is tms.py's whole life: accept one client on ln, stop
// listening, and serve that client (Echo), logging the outcome. The
// go-ahead may wait as long as the person at the keyboard needs, so the
// client's connection gets the detection of a vanished peer that
// internal/server gives each one it serves: a client that vanishes while
// it waits must not hold tms for ever. If ctx ends before a client comes,
// ServeOne returns ctx's error.
func (s *Server) ServeOne(ctx context.Context, ln net.Listener) (Transfer, error) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	conn, err := ln.Accept()
	stop()
	ln.Close()
	if err != nil {
		if ctx.Err() != nil {
			return Transfer{}, ctx.Err()
		}
		return Transfer{}, fmt.Errorf("accept: %w", endpoint.Cause(err))
	}
	defer conn.Close()
	if err := server.DetectVanishedPeer(conn, net.KeepAliveConfig{}, s.UserTimeout()); err != nil {
		s.logger().Warn("a vanished client may go unnoticed", "err", err)
	}
	s.clientIsAt(conn)
	t, err := s.echoLogged(ctx, conn, time.Now())
	if err == nil {
		s.logger().Info("transfer done", "sent_bytes", t.Sent, "elapsed", t.Elapsed)
	}
	return t, err
}

// clientIsAt writes tms.py's "client is at" line.
func (s *Server) clientIsAt(conn net.Conn) {
	if s.ClientLog != nil {
		fmt.Fprintf(s.ClientLog, "client is at %s\n", conn.RemoteAddr())
	}
}

// echoLogged is echo with a log line for a transfer cut short.
func (s *Server) echoLogged(ctx context.Context, conn net.Conn, start time.Time) (Transfer, error) {
	t, err := s.echo(ctx, conn, start)
	if errors.Is(err, ErrCutShort) {
		s.logger().Warn("transfer reset", "client", conn.RemoteAddr().String(), "sent_bytes", t.Sent, "err", err)
	}
	return t, err
}

// UserTimeout is the TCP_USER_TIMEOUT for this server's connections
// (server.Server's UserTimeout field): a reader that pauses is dropped by
// WriteIdle, not before by the kernel (see server.UserTimeoutFor).
func (s *Server) UserTimeout() time.Duration {
	return server.UserTimeoutFor(cmp.Or(s.WriteIdle, DefaultWriteIdle))
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
