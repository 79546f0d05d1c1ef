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
	// at all.
	Settle bool
	// Partial takes what arrived by Timeout as the message, instead of
	// failing with ErrMessageTimeout: for a message short enough that
	// answering the bytes so far is harmless (svr's request, at most 65
	// bytes, is then refused as unknown).
	Partial bool
}

// ReadMessage reads one message from conn by end, and gives up when ctx
// ends (the caller makes a blocked read return then, with
// endpoint.StopOnCancel; the check after each read keeps a client that
// trickles bytes from holding a stopping server until Timeout). It never
// returns more than end.Max bytes. It leaves conn's read deadline cleared.
func ReadMessage(ctx context.Context, conn net.Conn, end MessageEnd) ([]byte, error) {
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
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	var msg []byte
	var last time.Time // when the last byte arrived
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
			burst += int64(n)
			drained = n < want
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if n > 0 {
			if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
				return append(msg, buf[:i+1]...), nil
			}
			msg = append(msg, buf[:n]...)
			if len(msg) >= end.Max || (end.Complete != nil && end.Complete(msg)) {
				return msg, nil
			}
			last = time.Now()
			if err := conn.SetReadDeadline(earliest(last.Add(end.Gap), deadline)); err != nil {
				return nil, err
			}
		}
		timedOut := errors.Is(err, os.ErrDeadlineExceeded)
		switch {
		case err == nil:
		case len(msg) > 0 && timedOut && !time.Now().Before(deadline):
			if end.Partial {
				return msg, nil
			}
			return nil, timeoutError{fmt.Errorf("message of %d bytes still incomplete after %s", len(msg), end.Timeout)}
		case len(msg) > 0 && timedOut:
			// A quiet gap: the end, unless TCP may still be delivering
			// the message (a lost segment not yet sent again, a slow
			// link).
			if !end.Settle {
				return msg, nil
			}
			wait := EndWait(conn, burst, time.Since(last), end.Gap)
			if wait == 0 {
				return msg, nil
			}
			if err := conn.SetReadDeadline(earliest(time.Now().Add(wait), deadline)); err != nil {
				return nil, err
			}
		case len(msg) > 0 && errors.Is(err, io.EOF):
			return msg, nil // half-close: the message is complete
		case errors.Is(err, io.EOF):
			return nil, ErrNoMessage
		case timedOut:
			return nil, timeoutError{fmt.Errorf("%w within %s", ErrNoMessage, end.Timeout)}
		default:
			return nil, err
		}
	}
}

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
