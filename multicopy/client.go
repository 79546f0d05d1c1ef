package multicopy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

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
}

// Fetch is tmc: it sends msg on conn, half-closes its sending side, and
// reads until the server closes, readSize bytes at most per read (zero:
// ReadBufferSize), calling onChunk (if not nil) for each read as it arrives.
// A read that waits longer than idle (zero: no limit) fails with a timeout,
// as does ctx ending. Fetch does not close conn.
func Fetch(ctx context.Context, conn net.Conn, msg []byte, idle time.Duration, readSize int, onChunk func(chunk []byte)) (*Result, error) {
	if readSize <= 0 {
		readSize = ReadBufferSize
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	res := &Result{}
	start := time.Now()
	if _, err := stream.WriteAll(conn, msg, idle); err != nil {
		salvage(ctx, conn, onChunk)
		return res, fmt.Errorf("send: %w", ctxErr(ctx, err))
	}
	// Say "done sending" (section 5.3): the server need not wait for a
	// quiet gap to know the message is complete. tms.py ignores it.
	if err := stream.CloseWrite(conn); err != nil {
		salvage(ctx, conn, onChunk)
		return res, fmt.Errorf("half-close: %w", err)
	}
	_, err := stream.ReadChunks(idleReader{conn, idle}, make([]byte, readSize), func(chunk []byte) error {
		res.Stats.Add(len(chunk), time.Now())
		if onChunk != nil {
			onChunk(chunk)
		}
		return nil
	})
	res.Elapsed = time.Since(start)
	if err != nil {
		err = ctxErr(ctx, err)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return res, fmt.Errorf("no data for %s after %d bytes: timed out", idle, res.Stats.Total())
		}
		return res, fmt.Errorf("receive after %d bytes: %w", res.Stats.Total(), err)
	}
	return res, nil
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
	if onChunk == nil || ctx.Err() != nil {
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
type idleReader struct {
	conn net.Conn
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	if r.idle > 0 {
		if err := r.conn.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
			return 0, err
		}
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
