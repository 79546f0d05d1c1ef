package multicopy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/stream"
)

// ReadBufferSize is the client's default read size, as tmc.py's
// recv(1000000): the most a single read may return, not what it will
// return. It keeps the tutorial's picture, chunks of many sizes; a smaller
// size (iperf3 reads 128 KiB) keeps each copy out of the kernel within the
// CPU's cache and is faster for bulk transfer, at the price of chunks that
// are mostly exactly that size.
const ReadBufferSize = 1_000_000

// Result is what the client saw of one transfer.
type Result struct {
	Stats   stream.ChunkStats
	Elapsed time.Duration // from sending the message to end of file
	// Wait is from sending the message to its first byte back: the
	// server's go-ahead (tms waits for Enter) and one round trip.
	Wait time.Duration
	// Transfer is from the first byte back to end of file, the time the
	// server took to send; zero if nothing came back.
	Transfer time.Duration
}

// ErrEmptyAnswer is returned when the server closes the connection without
// sending a byte: a multicopy server always sends at least one copy, so
// this is a server that was stopped or gave up, never an empty answer.
// Fetch wraps it; a caller tells it with errors.Is.
var ErrEmptyAnswer = errors.New("the server closed the connection without sending anything")

// Client defaults and bounds.
const (
	// DefaultIdleTimeout is FetchOptions.IdleTimeout's default, as tmc's
	// --timeout.
	DefaultIdleTimeout = 30 * time.Second
	// MaxReadSize bounds FetchOptions.ReadSize.
	MaxReadSize = 64 << 20
)

// FetchOptions are Fetch's settings, the same shape as fleet.Options and
// sharedstring.Options: every field's zero value is its default, and a
// negative one means none.
type FetchOptions struct {
	// IdleTimeout bounds a send or a read that makes no progress: Fetch
	// then fails with a timeout. Zero means DefaultIdleTimeout; negative,
	// no limit but ctx (tmc.py waits for ever).
	IdleTimeout time.Duration
	// ReadSize is the most one read may return (the tutorial's
	// recv(1000000)). Zero means ReadBufferSize; at most MaxReadSize.
	ReadSize int
}

// Validate names the first field of o that is out of range.
func (o FetchOptions) Validate() error {
	if o.ReadSize < 0 || o.ReadSize > MaxReadSize {
		return server.Invalid("{ReadSize} must be from 1 to %d bytes, not %d", MaxReadSize, o.ReadSize)
	}
	return nil
}

// Fetch is tmc: it sends msg on conn, half-closes its sending side, and
// reads until the server closes, calling onChunk (if not nil) for each
// read as it arrives, within opts' IdleTimeout and ReadSize (ctx ending
// stops it too). Fetch does not close conn.
//
// Its errors are one plain line each, with the bytes received so far:
// a reset ("the server reset the connection after N bytes"), ErrEmptyAnswer,
// a timeout ("no data for 30s after N bytes: timed out"). The Result is
// returned with every error, holding what did arrive.
//
// A full server's refusal ("busy: ...; try again later", see
// server.RefuseLine) is not an answer: the first bytes are held back from
// onChunk until they cannot be one, and a whole answer that is one is
// returned as the error "server at ADDR refused the connection: busy: ...".
func Fetch(ctx context.Context, conn net.Conn, msg []byte, onChunk func(chunk []byte), opts FetchOptions) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return &Result{}, err
	}
	hold := newRefusalHold(string(msg), onChunk)
	res, err := fetch(ctx, conn, msg, server.Setting(opts.IdleTimeout, DefaultIdleTimeout), server.Setting(opts.ReadSize, ReadBufferSize), hold.add)
	if rerr := hold.end(conn.RemoteAddr()); rerr != nil {
		return res, rerr
	}
	return res, err
}

// fetch is Fetch with its settings resolved: idle 0, no limit.
func fetch(ctx context.Context, conn net.Conn, msg []byte, idle time.Duration, readSize int, onChunk func(chunk []byte)) (*Result, error) {
	stop := endpoint.StopOnCancel(ctx, conn)
	defer stop()
	res := &Result{}
	start := time.Now()
	var first time.Time
	if _, err := stream.WriteAll(conn, msg, idle); err != nil {
		salvage(ctx, conn, onChunk)
		return res, fmt.Errorf("send: %w", plain(ctxErr(ctx, err)))
	}
	// Say "done sending" (section 5.3): the server need not wait for a
	// quiet gap to know the message is complete. tms.py ignores it.
	// It fails only when the connection is gone already (a server that
	// answered and reset at once): the read below hands on what it sent
	// (a full server's refusal line) and says how it ended.
	stream.CloseWrite(conn)
	_, err := stream.ReadChunks(idleReader{ctx, conn, idle}, make([]byte, readSize), func(chunk []byte) error {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		res.Stats.Add(len(chunk), now)
		onChunk(chunk)
		return nil
	})
	end := time.Now()
	res.Elapsed = end.Sub(start)
	if first.IsZero() {
		res.Wait = res.Elapsed
	} else {
		res.Wait, res.Transfer = first.Sub(start), end.Sub(first)
	}
	got := res.Stats.Total()
	switch {
	case err == nil && got == 0:
		return res, ErrEmptyAnswer
	case err == nil:
		return res, nil
	}
	err = ctxErr(ctx, err)
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("after %d bytes: %w", got, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return res, fmt.Errorf("no data for %s after %d bytes: timed out", idle, got)
	case errors.Is(err, syscall.ECONNRESET) && got == 0:
		return res, errors.New("the server reset the connection before sending anything")
	case errors.Is(err, syscall.ECONNRESET):
		return res, fmt.Errorf("the server reset the connection after %d bytes: the answer is incomplete", got)
	}
	return res, fmt.Errorf("receive after %d bytes: %w", got, plain(err))
}

// plain strips Go's "read tcp 127.0.0.1:5->127.0.0.1:2000: read:" layers
// from a socket error, leaving its cause ("connection reset by peer").
func plain(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys *os.SyscallError
		if errors.As(op.Err, &sys) {
			return sys.Err
		}
		return op.Err
	}
	return err
}

// salvageMax bounds what salvage reads: a full server's refusal line is
// far shorter.
const salvageMax = 64 << 10

// salvage hands onChunk what the server sent before the connection broke
// under the client's send: a full server reads only the start of a long
// string, answers with its refusal line and resets, and the line waits in
// the receive buffer although the send failed. It reads only what is
// already there (a short deadline) and at most salvageMax bytes.
func salvage(ctx context.Context, conn net.Conn, onChunk func(chunk []byte)) {
	if ctx.Err() != nil {
		return
	}
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 4096)
	for total := 0; total < salvageMax; {
		n, err := conn.Read(buf)
		if n > 0 {
			onChunk(buf[:n])
			total += n
		}
		if err != nil {
			return
		}
	}
}

// idleReader sets a fresh read deadline before every read, so the limit is
// on silence, not on the length of the whole transfer.
// It stops at once when ctx ends: the fresh deadline would otherwise undo
// the past one that Fetch sets to interrupt a read (Ctrl-C mid-transfer
// went unanswered while the data kept coming).
type idleReader struct {
	ctx  context.Context
	conn net.Conn
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	if r.idle > 0 {
		if err := r.conn.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
			return 0, err
		}
	}
	// Look after setting the deadline, not before: ctx may end, and its
	// past deadline land, between a look and the fresh deadline, which
	// then undoes it (a Ctrl-C left tmc waiting out its whole timeout).
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.conn.Read(p)
}

// ctxErr prefers the context's reason over the deadline it used to
// interrupt the I/O.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
