package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// The end of a message with no length and no required terminator.
//
// The tutorial's clients send a request and then only read: tmc.py sends
// "abc", wps.py sends "ps", neither with a terminator nor a half-close.
// recv() returns whatever has arrived, so the server has to decide where
// the request ends (section 2.2: the reader's business, not TCP's).
// ReadMessage is that decision, written once for tms and svr.

// ErrNoMessage is ReadMessage's error (or wrapped by it) when the client
// closed, or Timeout passed, before a single byte arrived.
var ErrNoMessage = errors.New("client sent no message")

// ErrMessageTimeout is matched (errors.Is) by ReadMessage's error when the
// message was not complete within Timeout: nothing came, or, unless
// Partial, it was still arriving.
var ErrMessageTimeout = errors.New("message not complete within the timeout")

// MessageEnd says where a message ends. It ends at the first of:
//
//   - a newline byte ('\n', kept as part of the message);
//   - Complete reporting true for the bytes so far, when set;
//   - the client's half-close (end of file);
//   - Max bytes;
//   - a quiet gap of Gap with no new bytes, once at least one byte has
//     arrived (with Settle, only when TCP cannot still be delivering the
//     message: see EndWait);
//   - with Partial, Timeout passing with some bytes arrived.
//
// The whole message must arrive within Timeout of Start.
type MessageEnd struct {
	Max     int
	Gap     time.Duration
	Timeout time.Duration
	// Start is when Timeout began to run: the connection's accept, for a
	// server that waited for the first bytes before it called ReadMessage
	// (see server.Park). The zero time means the first read. With a
	// Start, what arrived within Timeout is read even if ReadMessage is
	// called after it: the limit is then one Gap from the call.
	Start time.Time
	// Complete, if set, ends the message as soon as the bytes so far are
	// one (svr: a name on the allow-list).
	Complete func(msg []byte) bool
	// Settle makes a quiet gap wait, before it ends the message, for as
	// long as EndWait says a lost or slow segment may still be due: for a
	// message of many segments (tms's); one segment arrives whole or not
	// at all. It also stretches the gap for a message that arrives in
	// pieces, to twice the longest pause between them.
	Settle bool
	// Partial takes what arrived by Timeout as the message, instead of
	// failing with ErrMessageTimeout: for a message short enough that
	// answering the bytes so far is harmless (svr's request, at most 65
	// bytes, is then refused as unknown).
	Partial bool
}

// Ending says what ended a message ReadMessageEnding read.
type Ending int

// The ends of a message, as MessageEnd lists them.
const (
	EndNewline  Ending = iota + 1 // a newline byte
	EndComplete                   // MessageEnd.Complete
	EndEOF                        // the client's half-close
	EndMax                        // MessageEnd.Max bytes
	EndGap                        // a quiet gap (and, with Settle, EndWait's wait)
	EndTimeout                    // MessageEnd.Partial: what arrived by the timeout
)

var endingNames = [...]string{"", "newline", "complete", "end of file", "max", "quiet gap", "timeout"}

func (e Ending) String() string {
	if e > 0 && int(e) < len(endingNames) {
		return endingNames[e]
	}
	return fmt.Sprintf("Ending(%d)", int(e))
}

// Guessed reports whether nothing on the wire marked the end: a quiet gap
// or a timeout is only the reader's guess that the sender has finished.
// Bytes may still come after it (a sender cut off by a stalled link, a
// segment lost at the tail of a write and sent again later).
func (e Ending) Guessed() bool { return e == EndGap || e == EndTimeout }

// Message is what ReadMessageEnding read: the bytes, what ended them, and
// what the reader saw of their arrival.
type Message struct {
	Bytes  []byte
	Ending Ending
	// Last is when the read that brought the last byte returned.
	Last time.Time
	// LongestPause is the longest wait between two reads that brought
	// bytes: on a clean link a single write arrives without a pause, so a
	// pause of a retransmission timeout or more (200 ms and up) shows a
	// segment lost and sent again, or a stalled link.
	LongestPause time.Duration
	// PiecePause is the longest such wait after a read of fewer than
	// smallPiece bytes: the pace of a sender that writes in small pieces
	// (a byte at a time, as typed). A single large write delivered in
	// chunks on a loaded machine pauses too, but after full reads, and
	// does not count.
	PiecePause time.Duration
	// Settled is how much longer than the gap the reader waited after
	// the last byte because the socket showed a segment might still be
	// due (EndWait), for a message ended by a quiet gap; 0 when the gap
	// alone ended it.
	Settled time.Duration
}

// ReadMessage reads one message from conn by end, and gives up when ctx
// ends (the caller makes a blocked read return then, with
// endpoint.StopOnCancel; the check after each read keeps a client that
// trickles bytes from holding a stopping server until Timeout). It never
// returns more than end.Max bytes. It leaves conn's read deadline cleared.
func ReadMessage(ctx context.Context, conn net.Conn, end MessageEnd) ([]byte, error) {
	m, err := ReadMessageEnding(ctx, conn, end)
	return m.Bytes, err
}

// ReadMessageEnding is ReadMessage that also says what ended the message
// and how its bytes arrived: a caller that answers a message whose end
// was guessed (Ending.Guessed) can watch for bytes that come after it.
func ReadMessageEnding(ctx context.Context, conn net.Conn, end MessageEnd) (Message, error) {
	defer conn.SetReadDeadline(time.Time{})
	start := end.Start
	if start.IsZero() {
		start = time.Now()
	}
	deadline := start.Add(end.Timeout)
	if !end.Start.IsZero() {
		// A server that parked the connection until its first bytes may
		// come to it after they arrived, late on a loaded machine: those
		// bytes are read, within one Gap more, rather than lost to a
		// deadline that passed while they waited (a read past its
		// deadline fails without looking).
		if late := time.Now().Add(end.Gap); deadline.Before(late) {
			deadline = late
		}
	}
	if err := rearm(ctx, conn, deadline); err != nil {
		return Message{}, err
	}
	var m Message
	var settling time.Time // when EndWait first asked for more than the gap
	done := func(msg []byte, e Ending) (Message, error) {
		m.Bytes, m.Ending = msg, e
		if e == EndGap && !settling.IsZero() {
			m.Settled = time.Since(settling)
		}
		return m, nil
	}
	var msg []byte
	var last time.Time // when the last byte arrived
	var lastN int      // how many bytes the read at last brought
	// burst is how many bytes were read since a read last returned less
	// than it asked for: the receive queue was empty then, so the burst
	// starts at a segment boundary (EndWait).
	var burst int64
	drained := false
	buf := make([]byte, min(end.Max, 16<<10))
	for {
		want := min(len(buf), end.Max-len(msg))
		n, err := conn.Read(buf[:want])
		if n > 0 {
			if drained {
				burst = 0
			}
			settling = time.Time{} // more came: any wait so far was not for nothing
			burst += int64(n)
			drained = n < want
		}
		if cerr := ctx.Err(); cerr != nil {
			return Message{}, cerr
		}
		if n > 0 {
			if end.Settle {
				// Acknowledge at once, not after the delayed-ACK timer
				// (up to 40 ms): a sender that writes in pieces with
				// Nagle's algorithm on holds each piece until the one
				// before is acknowledged, so a delayed acknowledgement
				// stretches the pauses between pieces past the gap.
				tcpsock.QuickAck(conn)
			}
			now := time.Now()
			if !last.IsZero() {
				m.LongestPause = max(m.LongestPause, now.Sub(last))
				if lastN < smallPiece {
					m.PiecePause = max(m.PiecePause, now.Sub(last))
				}
			}
			last, m.Last, lastN = now, now, n
			if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
				return done(append(msg, buf[:i+1]...), EndNewline)
			}
			msg = append(msg, buf[:n]...)
			if len(msg) >= end.Max {
				return done(msg, EndMax)
			}
			if end.Complete != nil && end.Complete(msg) {
				return done(msg, EndComplete)
			}
			if err := rearm(ctx, conn, earliest(last.Add(gap(end, m)), deadline)); err != nil {
				return Message{}, err
			}
		}
		timedOut := errors.Is(err, os.ErrDeadlineExceeded)
		switch {
		case err == nil:
		case len(msg) > 0 && timedOut && !time.Now().Before(deadline):
			if end.Partial {
				return done(msg, EndTimeout)
			}
			return Message{}, timeoutError{fmt.Errorf("message of %d bytes still incomplete after %s", len(msg), end.Timeout)}
		case len(msg) > 0 && timedOut:
			// A quiet gap: the end, unless TCP may still be delivering
			// the message (a lost segment not yet sent again, a slow
			// link).
			if !end.Settle {
				return done(msg, EndGap)
			}
			wait := endWait(conn, burst, time.Since(last), gap(end, m), m.LongestPause >= minRTO)
			if wait == 0 {
				return done(msg, EndGap)
			}
			if settling.IsZero() {
				settling = time.Now()
			}
			if err := rearm(ctx, conn, earliest(time.Now().Add(wait), deadline)); err != nil {
				return Message{}, err
			}
		case len(msg) > 0 && errors.Is(err, io.EOF):
			return done(msg, EndEOF) // half-close: the message is complete
		case errors.Is(err, io.EOF):
			return Message{}, ErrNoMessage
		case timedOut:
			return Message{}, timeoutError{fmt.Errorf("%w within %s", ErrNoMessage, end.Timeout)}
		default:
			return Message{}, err
		}
	}
}

// rearm moves conn's read deadline to t unless ctx has ended. It looks at
// ctx after the move: ctx may end, and the caller's past deadline land
// (endpoint.StopOnCancel), just before it, and a later deadline would undo
// that one, holding a stopping server until t.
func rearm(ctx context.Context, conn net.Conn, t time.Time) error {
	if err := conn.SetReadDeadline(t); err != nil {
		return err
	}
	return ctx.Err()
}

// gap is the quiet spell that ends m so far. With Settle it adapts to the
// sender: a message that came in pieces (a client writing a byte at a
// time, Nagle's algorithm holding each until the last is acknowledged, a
// delayed acknowledgement: 30 to 60 ms apart on a LAN) ends only after
// twice its longest pause, so pieces that come at the pace of the ones
// before are not taken for the end.
//
// A message in pieces (a pause of 5 ms or more after a small read: a
// single write arrives without one, or after full reads) also ends no sooner than
// piecesGap after its last byte: one of its small pieces may have been
// lost and be sent again after the sender's retransmission timeout (200
// ms and up), and nothing that arrives out of order or is counted shows
// that loss (the next piece waits in the sender, held by Nagle's
// algorithm, until the lost one is acknowledged).
func gap(end MessageEnd, m Message) time.Duration {
	if !end.Settle {
		return end.Gap
	}
	g := max(end.Gap, 2*m.PiecePause+10*time.Millisecond)
	if m.PiecePause >= 5*time.Millisecond {
		g = max(g, piecesGap)
	}
	return g
}

// smallPiece is the size below which a read counts as a piece of a
// message written in pieces: less than any segment a bulk write fills.
const smallPiece = 1024

// piecesGap is the least gap after a message that came in pieces: the
// least retransmission timeout and a margin for the sender's round trip
// and timer.
const piecesGap = 300 * time.Millisecond

// timeoutError is ReadMessage's error for a message that was not complete
// within the timeout; it matches ErrMessageTimeout.
type timeoutError struct{ err error }

func (e timeoutError) Error() string        { return e.err.Error() }
func (e timeoutError) Unwrap() error        { return e.err }
func (e timeoutError) Is(target error) bool { return target == ErrMessageTimeout }

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
