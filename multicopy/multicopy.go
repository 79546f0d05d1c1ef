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
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/tcpsock"
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
	// DefaultWriteTimeout drops a client that stops reading: no write progress
	// for this long ends the transfer.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxConns is the cap on clients served at once that
	// Configure sets, lower than internal/server's own: a client may send
	// a 1,000,000-byte message (the tutorial's recv(1000000)) that is held
	// for the whole transfer, and 1,000 such clients that do not read
	// measured 1.74 GB of RSS. At 10,000 they would need 17 GB.
	DefaultMaxConns = 1000
	// MaxCopies is the most Copies may be: that many copies of the
	// longest message (MaxMessage bytes) still count in an int64.
	MaxCopies = math.MaxInt64 / MaxMessage
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
// It gives up when ctx ends. It is stream.ReadMessageEnding with tms's
// rule, Timeout running from start.
func readMessage(ctx context.Context, conn net.Conn, max int, gap, timeout time.Duration, start time.Time) (stream.Message, error) {
	m, err := stream.ReadMessageEnding(ctx, conn, stream.MessageEnd{Max: max, Gap: gap, Timeout: timeout, Start: start, Settle: true})
	if err != nil && ctx.Err() == nil && !errors.Is(err, stream.ErrNoMessage) && !errors.Is(err, stream.ErrMessageTimeout) {
		err = plain(err)
	}
	return m, err
}

// Server is tms, the protocol handler: Echo serves the multicopy echo on
// one connection and reports the transfer; ServeConn (what internal/server
// calls for each client) echoes and logs the outcome. The zero value uses
// the defaults above; every field's zero value is its default, and none
// of them can be none (a negative value): a server never waits on a
// client for ever.
type Server struct {
	// Copies is how many times the message is sent back; 0 means
	// DefaultCopies. At most MaxCopies.
	Copies int64
	// QuietGap, ReadTimeout and WriteTimeout: see the Default constants,
	// which zero means.
	QuietGap     time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// GoAhead, if set, is called after the message is read and before it is
	// sent back: tms.py's raw_input(), which shows that the client blocks in
	// recv() until the server sends. Its error aborts the transfer. Its
	// context ends, with ErrClientLeft or ErrMessageContinued as its cause
	// (context.Cause), when the client goes away or its message turns out
	// to go on, and when the server begins to stop (server.Stopping).
	GoAhead func(ctx context.Context, msg []byte) error
	// ClientLog, if set, receives tms.py's "client is at ADDR" line for
	// each client ServeConn serves.
	ClientLog io.Writer
	// Logger receives one line per transfer. Nil discards.
	Logger *slog.Logger
}

// Validate implements server.Validator: it names the first field of s
// that is out of range.
func (s *Server) Validate(*server.Server) error {
	switch {
	case s.Copies < 0:
		return server.Invalid("{Copies} must be at least 1, not %d", s.Copies)
	case s.Copies > MaxCopies:
		return server.Invalid("{Copies} must be at most %d, not %d: the copies of a message of up to %d bytes must add up to fewer than 2^63 bytes", int64(MaxCopies), s.Copies, MaxMessage)
	case s.QuietGap < 0:
		return server.Invalid("{QuietGap} must be positive, not %s", s.QuietGap)
	case s.ReadTimeout < 0:
		return server.Invalid("{ReadTimeout} must be positive, not %s", s.ReadTimeout)
	case s.WriteTimeout < 0:
		return server.Invalid("{WriteTimeout} must be positive, not %s", s.WriteTimeout)
	}
	return nil
}

// Configure implements server.Configurer: the caps and manners of the
// server.Server that serves s, where the caller left them zero.
//
//   - MaxConns: DefaultMaxConns.
//   - Refuse: the line "busy: ..." (server.RefuseLine).
//   - UserTimeout: one that lets a reader that pauses last WriteTimeout
//     (server.UserTimeoutFor).
//
// A full tms refuses newcomers rather than make room (EvictWaiting stays
// off): a string may take seconds to arrive on a slow or lossy link, and
// its sender would be closed mid-string for a newcomer
// (docs/reliability.md).
func (s *Server) Configure(srv *server.Server) {
	if srv.MaxConns == 0 {
		srv.MaxConns = DefaultMaxConns
	}
	if srv.Refuse == nil {
		srv.Refuse = server.RefuseLine
	}
	if srv.UserTimeout == 0 {
		srv.UserTimeout = server.UserTimeoutFor(s.writeTimeout())
	}
}

var (
	_ server.Handler    = (*Server)(nil)
	_ server.Configurer = (*Server)(nil)
	_ server.Validator  = (*Server)(nil)
)

// Transfer describes one served client.
type Transfer struct {
	Message []byte
	// Ending is what ended the message: a newline, the client's
	// half-close, MaxMessage, or a quiet gap (a guess).
	Ending  stream.Ending
	Sent    int64
	Elapsed time.Duration // from the end of the message to the close
}

// ErrCutShort is wrapped by Echo's error when the transfer was stopped
// (the server is shutting down) before every copy was sent; a caller of
// Echo tells it with errors.Is.
var ErrCutShort = errors.New("transfer cut short: the connection is reset")

func (s *Server) writeTimeout() time.Duration { return cmp.Or(s.WriteTimeout, DefaultWriteTimeout) }

// Echo serves one client on conn: read the message, wait for the
// go-ahead, send the copies. It does not close conn.
//
// Until every copy has been sent, conn is set to close with a reset
// (SO_LINGER 0), not a FIN: whoever closes it (the caller, or a server
// stopping past its grace period), a client then sees "connection reset",
// never an end of file that looks like a complete answer. After the last
// copy the ordinary close is restored, so a complete answer ends with FIN;
// for a message whose end was only guessed from a quiet spell, not before
// that guess is confirmed (see confirmEnd). Echo returns nil only once
// the client's kernel has acknowledged the whole answer and its end.
func (s *Server) Echo(ctx context.Context, conn net.Conn) (Transfer, error) {
	return s.echo(ctx, ctx, conn, time.Now())
}

// echo is Echo with two ends: a message still arriving, and a go-ahead
// not yet given, end when stopping does; a transfer in flight only when
// ctx does (One gives it the server's Grace more). ReadTimeout runs from start,
// the connection's accept.
func (s *Server) echo(stopping, ctx context.Context, conn net.Conn, start time.Time) (Transfer, error) {
	var t Transfer
	tcpsock.Reset(conn)
	// Whether a guessed end of the message can be trusted depends on
	// whether the client could be heard all along (confirmEnd).
	live, stopLive := watchLiveness(conn)
	defer stopLive()
	// Stop a message still arriving when the server is stopped (SIGINT
	// in the one-client mode).
	stop := endpoint.StopOnCancel(stopping, conn)
	m, err := readMessage(stopping, conn, MaxMessage, cmp.Or(s.QuietGap, DefaultQuietGap), cmp.Or(s.ReadTimeout, DefaultReadTimeout), start)
	stop()
	if err != nil {
		if errors.Is(err, stream.ErrMessageTimeout) {
			// Tell the client, with a reset rather than the FIN of a
			// normal end, that its message was not served: a client that
			// cannot check its answer (tmc.py) would otherwise take an
			// empty one for success.
			tcpsock.Reset(conn)
		}
		return t, fmt.Errorf("read message from %s: %w", conn.RemoteAddr(), err)
	}
	t.Message, t.Ending = m.Bytes, m.Ending
	msg := m.Bytes
	copies := s.Copies
	if copies <= 0 {
		copies = DefaultCopies
	}
	if copies > math.MaxInt64/int64(len(msg)) {
		return t, fmt.Errorf("%d copies of %d bytes is more than %d bytes", copies, len(msg), int64(math.MaxInt64))
	}
	tail := watchTail(conn, m.Ending)
	defer tail.stop()
	if s.GoAhead != nil {
		if err := s.awaitGoAhead(stopping, conn, m, tail); err != nil {
			return t, err
		}
	}
	before, _ := tcpsock.ReadStats(conn)
	// The transfer ends when ctx does, and at once when the client's
	// message turns out to go on past a guessed end, or the client goes.
	xctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-tail.got:
			if err := tailError(tail.ev, m); err != nil {
				cancel(err)
			}
		case <-xctx.Done():
		}
	}()
	stop = endpoint.StopOnCancel(xctx, conn)
	sending := time.Now()
	t.Sent, err = stream.WriteRepeatedContext(xctx, conn, msg, copies, s.writeTimeout())
	t.Elapsed = time.Since(sending)
	stop()
	cancel(nil)
	<-watched
	want := copies * int64(len(msg))
	if err != nil {
		if cause := context.Cause(xctx); errors.Is(cause, ErrMessageContinued) || errors.Is(cause, ErrClientLeft) {
			resetWhenHeard(ctx, conn, s.writeTimeout())
			return t, fmt.Errorf("%w (after %d of %d bytes of the answer to %s)", cause, t.Sent, want, conn.RemoteAddr())
		}
		if ctx.Err() != nil {
			return t, fmt.Errorf("%w: stopped after sending %d of %d bytes to %s", ErrCutShort, t.Sent, want, conn.RemoteAddr())
		}
		resetWhenHeard(ctx, conn, s.writeTimeout())
		return t, fmt.Errorf("send to %s after %d of %d bytes: %w", conn.RemoteAddr(), t.Sent, want, plain(err))
	}
	if m.Ending.Guessed() {
		if err := s.confirmEnd(ctx, conn, m, t.Sent, tail, live, before); err != nil {
			if ctx.Err() != nil {
				return t, fmt.Errorf("%w: stopped while the end of the answer to %s was held back", ErrCutShort, conn.RemoteAddr())
			}
			resetWhenHeard(ctx, conn, s.writeTimeout())
			return t, fmt.Errorf("%w; the connection is reset", err)
		}
	}
	tcpsock.CloseWithFIN(conn) // complete: the close is an orderly FIN after the data
	if err := s.finish(ctx, conn, tail, m); err != nil {
		return t, err
	}
	t.Elapsed = time.Since(start)
	return t, nil
}

// awaitGoAhead calls GoAhead, ending its wait when the client goes away
// (it resets the connection, or closes it more than leftAfter after its
// message: the tutorial's client never half-closes) or its message turns
// out to go on past a guessed end.
func (s *Server) awaitGoAhead(stopping context.Context, conn net.Conn, m stream.Message, tail *tailWatch) error {
	gctx, cancel := context.WithCancelCause(stopping)
	defer cancel(nil)
	alarm := func(ev tailEvent) error {
		if ev.kind == tailEOF {
			if !m.Ending.Guessed() && ev.at.Sub(m.Last) < leftAfter {
				return nil // the end of its sending, not its leaving
			}
			return fmt.Errorf("%w before the go-ahead: %s closed the connection", ErrClientLeft, conn.RemoteAddr())
		}
		if ev.kind == tailErr {
			return fmt.Errorf("%w before the go-ahead: %s: %w", ErrClientLeft, conn.RemoteAddr(), ev.err)
		}
		return tailError(ev, m)
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-tail.got:
			if err := alarm(tail.ev); err != nil {
				cancel(err)
			}
		case <-gctx.Done():
		}
	}()
	err := s.GoAhead(gctx, m.Bytes)
	cancel(nil)
	<-watched
	if cause := context.Cause(gctx); errors.Is(cause, ErrClientLeft) || errors.Is(cause, ErrMessageContinued) {
		resetWhenHeard(stopping, conn, s.writeTimeout())
		return cause
	}
	if err != nil {
		if stopping.Err() != nil {
			return fmt.Errorf("%w: stopped before sending anything to %s", ErrCutShort, conn.RemoteAddr())
		}
		return fmt.Errorf("%w: before sending anything to %s: %w", ErrCutShort, conn.RemoteAddr(), err)
	}
	return nil
}

// drainMax bounds what is read and dropped after a message that ended at
// a newline or at MaxMessage: a client still sending after that much is
// not waiting for the end of the answer.
const drainMax = MaxMessage

// finish ends a complete transfer so that the client gets all of it and
// a FIN: it half-closes (the FIN goes after the last copy) and waits
// (until ctx ends, or WriteTimeout passes with nothing acknowledged) until
// the client's kernel has acknowledged everything sent and the FIN
// (tcpsock.AwaitAcked, whose rule says what a reset does), while tail
// goes on reading and dropping what the client still sends (bytes after
// the newline that ended its message, say). Without that reading,
// closing a socket with unread bytes makes the kernel answer with a
// reset and drop the copies still queued: the client lost the end of an
// answer the server had logged as done. It returns nil only when the
// client holds the whole answer and its end; otherwise why not (the
// client reset the connection: it left).
func (s *Server) finish(ctx context.Context, conn net.Conn, tail *tailWatch, m stream.Message) error {
	if err := stream.CloseWrite(conn); err != nil {
		return fmt.Errorf("%w before the end of the answer: %w", ErrClientLeft, plain(err))
	}
	// Bytes after a guessed end stop the wait at once: too late to take
	// back, the FIN is on its way. A read error only wakes it: whether
	// the client left before taking everything is the send queue's to
	// say.
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-tail.got:
			if ev := tail.ev; ev.kind == tailData {
				cancel(fmt.Errorf("%w, after the answer had ended: %d bytes taken, more came %s after the last of them",
					ErrMessageContinued, len(m.Bytes), ev.at.Sub(m.Last).Round(time.Millisecond)))
			}
		case <-wctx.Done():
		}
	}()
	idle := s.writeTimeout()
	err := tcpsock.AwaitAcked(wctx, conn, idle, tail.got)
	cancel(nil)
	<-watched
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrMessageContinued):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("%w: stopped before %s acknowledged the end of the answer", ErrCutShort, conn.RemoteAddr())
	case errors.Is(err, tcpsock.ErrNoProgress):
		return fmt.Errorf("%s acknowledged nothing of the end of the answer for %s", conn.RemoteAddr(), idle)
	}
	select {
	case <-tail.got:
		if tail.ev.kind == tailErr {
			err = tail.ev.err // the read's error says more: "read tcp ...: connection reset by peer"
		}
	default:
	}
	return fmt.Errorf("%w before taking the whole answer: %w", ErrClientLeft, err)
}

// ServeConn serves one client with Echo and logs the outcome (a
// server.Handler); a client that fails costs nothing to the others. Until
// the client's first bytes come, its connection is parked (server.ParkSocket):
// a client that connects and says nothing holds no goroutine.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	s.clientIsAt(conn)
	start := time.Now()
	// A parked connection that the server closes must end with a reset
	// too (see Echo).
	tcpsock.Reset(conn)
	serve := func(ctx context.Context, conn net.Conn) {
		t, err := s.echoLogged(ctx, ctx, conn, start)
		switch {
		case err == nil:
			s.logger().Info("transfer done", "client", conn.RemoteAddr().String(), "message_bytes", len(t.Message), "message_end", t.Ending.String(), "sent_bytes", t.Sent, "elapsed", t.Elapsed)
		case errors.Is(err, ErrMessageContinued):
			s.logger().Warn("message continued after its guessed end", "client", conn.RemoteAddr().String(), "message_bytes", len(t.Message), "sent_bytes", t.Sent, "err", err)
		case !errors.Is(err, ErrCutShort):
			s.logger().Info("transfer failed", "client", conn.RemoteAddr().String(), "err", err)
		}
	}
	if server.ParkSocket(ctx, conn, start.Add(cmp.Or(s.ReadTimeout, DefaultReadTimeout)), serve) {
		return
	}
	serve(ctx, conn)
}

// One is tms.py's whole life as a server.Handler: it serves its first
// client (Echo) and is then done (server.Finisher), so server.Run stops.
// Serve it on server.AcceptOnce(ln), which stops listening once the
// client is in, as tms.py takes no second one; the server gives the
// client the detection of a vanished peer it gives every client: one
// that vanishes while the go-ahead waits (as long as the person at the
// keyboard needs) must not hold tms for ever.
//
// When the server begins to stop (a signal), a message still arriving
// and a go-ahead not given end at once; a transfer in flight gets the
// server's Grace, as the servers of many clients give theirs.
type One struct {
	Server *Server

	done chan struct{}
	t    Transfer
	err  error
}

// NewOne returns the handler that serves s to one client.
func NewOne(s *Server) *One { return &One{Server: s, done: make(chan struct{})} }

// ServeConn serves the one client and logs the outcome: "transfer done",
// or, when a stop ended it, "transfer failed" (Err says the rest).
func (o *One) ServeConn(ctx context.Context, conn net.Conn) {
	defer close(o.done)
	s := o.Server
	stopping, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-server.Stopping(ctx):
			stop()
		case <-stopping.Done():
		}
	}()
	s.clientIsAt(conn)
	o.t, o.err = s.echoLogged(stopping, ctx, conn, time.Now())
	switch {
	case o.err == nil:
		s.logger().Info("transfer done", "sent_bytes", o.t.Sent, "message_end", o.t.Ending.String(), "elapsed", o.t.Elapsed)
	case stopping.Err() != nil && !errors.Is(o.err, ErrCutShort):
		// After a signal the exit status says only that tms was
		// stopped: the log says what became of the transfer.
		s.logger().Info("transfer failed", "err", o.err)
	}
}

// Done implements server.Finisher: it is closed once the client has been
// served.
func (o *One) Done() <-chan struct{} { return o.done }

// Silent implements server.SilentFinisher: ServeConn's line is tms's
// last word, as tms.py's.
func (o *One) Silent() {}

// Result is the client's transfer and how it ended (nil: served whole);
// a zero Transfer and nil before a client came.
func (o *One) Result() (Transfer, error) {
	select {
	case <-o.done:
		return o.t, o.err
	default:
		return Transfer{}, nil
	}
}

// Configure implements server.Configurer: one slot, and the Server's
// own caps and manners (Server.Configure).
func (o *One) Configure(srv *server.Server) {
	srv.MaxConns = 1
	o.Server.Configure(srv)
}

// Validate implements server.Validator: the Server's fields.
func (o *One) Validate(srv *server.Server) error { return o.Server.Validate(srv) }

var (
	_ server.Finisher       = (*One)(nil)
	_ server.SilentFinisher = (*One)(nil)
	_ server.Configurer     = (*One)(nil)
	_ server.Validator      = (*One)(nil)
)

// clientIsAt writes tms.py's "client is at" line.
func (s *Server) clientIsAt(conn net.Conn) {
	if s.ClientLog != nil {
		fmt.Fprintf(s.ClientLog, "client is at %s\n", conn.RemoteAddr())
	}
}

// echoLogged is echo with a log line for a transfer cut short.
func (s *Server) echoLogged(stopping, ctx context.Context, conn net.Conn, start time.Time) (Transfer, error) {
	t, err := s.echo(stopping, ctx, conn, start)
	if errors.Is(err, ErrCutShort) {
		s.logger().Warn("transfer reset", "client", conn.RemoteAddr().String(), "sent_bytes", t.Sent, "err", err)
	}
	return t, err
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
