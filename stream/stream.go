// Package stream holds the tutorial's lessons about TCP as one byte stream,
// as small functions the tcplab commands are built on.
//
// The tutorial ("Network Programming with Python", N. Matloff) makes four
// points about a TCP connection, and each has its function here:
//
//   - Section 1.4 and 2.2: everything one side sends is one long message that
//     arrives in chunks of the network's choosing, so the reader loops until
//     end of file. ReadChunks is that loop; ChunkStats describes the chunks.
//   - Section 4: send() may take only part of the data, hence sendall().
//     WriteAll is Go's sendall with a progress deadline; WriteRepeated sends
//     many copies of a message without building them in memory.
//   - Section 5: lines are the reader's business, not TCP's. ReadLine reads
//     one bounded line from a bufio.Reader, as makefile() does in Python.
//   - Section 5.3: the tail end of the data arrives only when the sender
//     flushes or closes; see CloseWrite.
//   - Section 2.2 and 5.2 again: a client that sends a request without a
//     terminator or a close (tmc.py's "abc", wps.py's "ps") leaves the
//     server to decide where it ends; ReadMessage is that decision, and
//     EndWait keeps a quiet spell on a lossy link from cutting it.
package stream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// ReadChunks is the receive loop of the tutorial's client tmc.py (section
// 2.2): it calls r.Read into buf until end of file and hands each chunk to fn,
// in order. The chunk is only valid during the call. It returns the number of
// bytes read and nil at a clean end of file, or the first error from r or fn.
//
// Go's Read, like recv(), returns whatever the kernel has buffered, at most
// len(buf): the chunk sizes say nothing about how the sender wrote.
func ReadChunks(r io.Reader, buf []byte, fn func(chunk []byte) error) (int64, error) {
	if len(buf) == 0 {
		return 0, errors.New("stream: ReadChunks with an empty buffer")
	}
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			total += int64(n)
			if ferr := fn(buf[:n]); ferr != nil {
				return total, ferr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// DeadlineWriter is a writer whose writes can be bounded in time, such as a
// net.Conn.
type DeadlineWriter interface {
	io.Writer
	SetWriteDeadline(t time.Time) error
}

// WriteAll is the tutorial's sendall() (section 4) with a deadline that a
// hostile reader cannot stretch. In Go, net.Conn.Write already loops until
// every byte is in the kernel's buffer or an error occurs, so there is no
// short write to handle by hand; what is left to decide is how long to wait
// for a reader that does not read. WriteAll gives the peer idle time to make
// progress: each time some bytes are accepted the deadline moves forward, and
// only a write that makes no progress for idle fails. A slow reader that keeps
// reading finishes; one that stops is dropped, though not exactly idle after
// its last read: Write reports progress only when its deadline passes, so
// bytes taken early in one window buy a whole new one, and the kernel's send
// buffer keeps growing for a while after the reader stops. On loopback a
// reader that stopped was dropped after 2 to 3 times idle (1.5 s for 500 ms);
// size idle with that in mind. idle <= 0 means no deadline.
// If w is not a DeadlineWriter, WriteAll is w.Write.
func WriteAll(w io.Writer, p []byte, idle time.Duration) (int, error) {
	if _, ok := w.(DeadlineWriter); !ok || idle <= 0 {
		return w.Write(p)
	}
	bufs := net.Buffers{p}
	n, err := writeBuffersAll(context.Background(), w, &bufs, idle)
	return int(n), err
}

// RepeatBlockSize is the size of the block of whole copies WriteRepeated
// builds: large enough that the kernel copies from it in long runs, small
// enough to keep memory per client small.
const RepeatBlockSize = 256 << 10

// repeatWriteSize is about how many bytes WriteRepeated hands the kernel in
// one system call, by naming the same block several times in one writev(2).
// On loopback, 1 MiB per call moved a gigabyte about a quarter faster than
// one 256 KiB write per call (fewer calls, fewer wake-ups of the sender),
// and it costs no memory: the kernel reads the block again for each iovec.
const repeatWriteSize = 1 << 20

// WriteRepeated writes copies copies of msg to w, the tms.py line
// "data = 10000 * data", without holding copies × len(msg) bytes: it builds
// one block of whole copies of about RepeatBlockSize bytes and writes it
// again and again, several times per vectored write (net.Buffers, writev(2)
// on a TCP connection), with idle as in WriteAll; a msg over half
// RepeatBlockSize is repeated as it is, without a block. Memory is at most
// max(len(msg), RepeatBlockSize) beyond msg, whatever copies is; w must not
// modify or retain msg. It is the lesson's form, for a program with no
// context to stop it; a server uses WriteRepeatedContext.
func WriteRepeated(w io.Writer, msg []byte, copies int64, idle time.Duration) (int64, error) {
	return WriteRepeatedContext(context.Background(), w, msg, copies, idle)
}

// WriteRepeatedContext is WriteRepeated that stops, with ctx's error, once
// ctx ends. The caller interrupts a write in progress (a reader that does
// not read) by moving w's write deadline to the past when ctx ends (see
// endpoint.StopOnCancel); WriteRepeatedContext then does not move it
// forward again, as the progress deadline would otherwise do: a write
// that had made some progress used to start a fresh window, and a server
// asked to stop went on sending.
func WriteRepeatedContext(ctx context.Context, w io.Writer, msg []byte, copies int64, idle time.Duration) (int64, error) {
	if len(msg) == 0 || copies <= 0 {
		return 0, nil
	}
	perBlock := max(int64(1), int64(RepeatBlockSize/len(msg)))
	perBlock = min(perBlock, copies)
	block := msg // one copy per block: repeating msg itself saves a copy of up to MaxMessage per client
	if perBlock > 1 {
		block = make([]byte, 0, perBlock*int64(len(msg)))
		for range perBlock {
			block = append(block, msg...)
		}
	}
	// No more entries than there are blocks to write: a block is small
	// only when the copies are few (one copy of "z" is a 1-byte block).
	blocks := (copies + perBlock - 1) / perBlock
	blocksPerWrite := int(min(int64(max(1, repeatWriteSize/len(block))), blocks))
	vec := make([][]byte, 0, blocksPerWrite)
	var bufs net.Buffers
	var total int64
	for left := copies; left > 0; {
		vec = vec[:0]
		for range blocksPerWrite {
			if left == 0 {
				break
			}
			k := min(left, perBlock)
			vec = append(vec, block[:k*int64(len(msg))])
			left -= k
		}
		// A fresh view each time: WriteTo moves bufs forward and clears
		// the entries it has written, so vec keeps its backing array.
		bufs = vec
		n, err := writeBuffersAll(ctx, w, &bufs, idle)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// writeBuffersAll is WriteAll's loop, for a vectored write: it writes every
// byte of bufs, moving the deadline forward whenever some bytes are
// accepted, until ctx ends.
func writeBuffersAll(ctx context.Context, w io.Writer, bufs *net.Buffers, idle time.Duration) (int64, error) {
	dw, ok := w.(DeadlineWriter)
	if !ok || idle <= 0 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return bufs.WriteTo(w)
	}
	var written int64
	for len(*bufs) > 0 {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		if err := dw.SetWriteDeadline(time.Now().Add(idle)); err != nil {
			return written, err
		}
		// ctx may have ended, and its past deadline been set, just
		// before the fresh one above: look again, or that deadline is
		// lost and the write goes on.
		if err := ctx.Err(); err != nil {
			return written, err
		}
		n, err := bufs.WriteTo(dw)
		written += n
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && n > 0 {
				continue // progress was made: the reader is slow, not stuck
			}
			if cerr := ctx.Err(); cerr != nil {
				return written, cerr
			}
			return written, err
		}
	}
	return written, nil
}

// ErrLineTooLong is returned by ReadLine for a line longer than its bound.
var ErrLineTooLong = errors.New("line too long")

// ReadLine returns the next line from br without its "\n" (or "\r\n"),
// refusing lines longer than max bytes. It is what Python's makefile() gives
// the tutorial's wps.py (section 5.2): the stream cut into lines, with the
// leftover part of a chunk kept for the next call, here by the bufio.Reader.
// A last line without a newline is returned with io.EOF only if it is empty;
// otherwise it is returned with nil and the next call returns io.EOF.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max+2 { // +2: the terminator is not counted
			return nil, ErrLineTooLong
		}
		line = append(line, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			if len(line) > max {
				return nil, ErrLineTooLong
			}
			return line, nil
		}
		if err != nil {
			return line, err
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > max {
			return nil, ErrLineTooLong
		}
		return line, nil
	}
}

// WriteFinal writes p as the last bytes this side sends on conn and then
// half-closes it (CloseWrite): an answer followed by end of file, as the
// tutorial's svr.py sends the output of w and closes. On Linux it corks the
// connection first (TCP_CORK), so a short answer and the FIN leave in one
// segment and the peer is woken once, not twice. Over TLS (*tls.Conn) the
// TCP connection beneath is corked and shut the same way, after the TLS
// close_notify. The caller sets the write deadline; the connection must
// not be written again.
func WriteFinal(conn net.Conn, p []byte) error {
	tcpsock.Cork(conn)
	if _, err := conn.Write(p); err != nil {
		return err
	}
	return CloseWrite(conn)
}

// CloseWrite half-closes conn if it supports it (TCP and Unix sockets do):
// the peer reads end of file, so it stops waiting for more (the tail-end
// problem of section 5.3), while this side can still read the answer.
// For other connections it does nothing and returns nil.
//
// A *tls.Conn's own CloseWrite only sends the TLS close_notify, leaving the
// TCP connection open until it is closed; here the TCP write side is shut
// after it, so a peer reading the TCP stream to its end (openssl s_client
// and other TLS tools do) sees end of file at once, as a plaintext peer does.
func CloseWrite(conn net.Conn) error {
	if tc, ok := conn.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
		return CloseWrite(tc.NetConn())
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
