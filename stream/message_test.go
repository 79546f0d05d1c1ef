package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// ReadMessage's rules, in a bubble over net.Pipe (made TCP-like by
// tcpPipe): fake time makes every gap and timeout exact, so each case also
// checks when the message ended.
func TestReadMessageRules(t *testing.T) {
	const gap, timeout = 100 * time.Millisecond, time.Second
	isPS := func(b []byte) bool { return string(b) == "ps" }
	type part struct {
		after time.Duration // pause before the write
		data  string
	}
	for _, tc := range []struct {
		name    string
		end     MessageEnd
		parts   []part
		close   bool // the client closes after its parts
		want    string
		err     error         // nil: want is the message
		took    time.Duration // when the message ended
		trickle bool          // the client keeps writing a byte every 30 ms
	}{
		{name: "newline, kept", parts: []part{{0, "abc\ndef"}}, want: "abc\n"},
		{name: "Complete", end: MessageEnd{Complete: isPS}, parts: []part{{0, "ps"}}, want: "ps"},
		{name: "Complete not yet", end: MessageEnd{Complete: isPS}, parts: []part{{0, "p"}, {gap / 2, "s"}}, want: "ps", took: gap / 2},
		{name: "quiet gap", parts: []part{{0, "abc"}}, want: "abc", took: gap},
		{name: "two parts within the gap", parts: []part{{0, "ab"}, {gap - time.Millisecond, "c"}}, want: "abc", took: 2*gap - time.Millisecond},
		{name: "end of file", parts: []part{{0, "abc"}}, close: true, want: "abc"},
		{name: "Max", end: MessageEnd{Max: 4}, parts: []part{{0, "abcdefgh"}}, want: "abcd"},
		{name: "nothing, then close", close: true, err: ErrNoMessage},
		{name: "nothing at all", err: ErrMessageTimeout, took: timeout},
		{name: "trickle", trickle: true, err: ErrMessageTimeout, took: timeout},
		{name: "trickle, Partial", end: MessageEnd{Partial: true}, trickle: true, want: strings.Repeat("x", 34), took: timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				end := tc.end
				end.Gap, end.Timeout = gap, timeout
				if end.Max == 0 {
					end.Max = 1 << 10
				}
				srv, cli := tcpPipe()
				defer srv.Close()
				defer cli.Close()
				wrote := make(chan struct{})
				go func() {
					defer close(wrote)
					for _, p := range tc.parts {
						time.Sleep(p.after) // fake time: the client's pause
						cli.Write([]byte(p.data))
					}
					for tc.trickle {
						if _, err := cli.Write([]byte("x")); err != nil {
							return
						}
						time.Sleep(30 * time.Millisecond) // fake time: never a whole gap
					}
					if tc.close {
						cli.Close()
					}
				}()
				start := time.Now()
				got, err := ReadMessage(context.Background(), srv, end)
				took := time.Since(start)
				srv.Close() // ends a trickle
				<-wrote
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("got %q, %v; want %v", got, err, tc.err)
					}
				} else if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				if took != tc.took {
					t.Errorf("ended after %s, want %s", took, tc.took)
				}
			})
		})
	}
}

// A message still arriving when ctx ends is given up at the next read.
func TestReadMessageStopsWithCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := tcpPipe()
		defer srv.Close()
		defer cli.Close()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			cli.Write([]byte("a"))
			cancel()
			cli.Write([]byte("b"))
		}()
		if got, err := ReadMessage(ctx, srv, MessageEnd{Max: 10, Gap: time.Second, Timeout: time.Minute}); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %q, %v; want context.Canceled", got, err)
		}
	})
}

// tcpPipe is net.Pipe with one difference, which makes it behave like a
// TCP connection: a deadline can still be set once the peer has closed (a
// TCP socket allows it, and its next read returns end of file; net.Pipe
// refuses with io.ErrClosedPipe). Over a bare net.Pipe, a client that
// closed between two of ReadMessage's reads made ReadMessage fail with
// "read/write on closed pipe" instead of returning the message or
// ErrNoMessage (about 1 run in 100 of the "end of file" and "nothing,
// then close" cases).
func tcpPipe() (net.Conn, net.Conn) {
	a, b := net.Pipe()
	return &pipeEnd{Conn: a}, &pipeEnd{Conn: b}
}

type pipeEnd struct {
	net.Conn
	closed atomic.Bool // this end, not the peer, was closed
}

func (p *pipeEnd) Close() error {
	p.closed.Store(true)
	return p.Conn.Close()
}

// peerClosed is err, or nil when err is net.Pipe's refusal to set a
// deadline because the peer closed: a read then ends at once with
// io.EOF, as on TCP, whatever the deadline.
func (p *pipeEnd) peerClosed(err error) error {
	if errors.Is(err, io.ErrClosedPipe) && !p.closed.Load() {
		return nil
	}
	return err
}

func (p *pipeEnd) SetDeadline(t time.Time) error { return p.peerClosed(p.Conn.SetDeadline(t)) }
func (p *pipeEnd) SetReadDeadline(t time.Time) error {
	return p.peerClosed(p.Conn.SetReadDeadline(t))
}
func (p *pipeEnd) SetWriteDeadline(t time.Time) error {
	return p.peerClosed(p.Conn.SetWriteDeadline(t))
}

// A message that arrived before its Start's Timeout passed is read even if
// ReadMessage is called after that (a parked connection woken late on a
// loaded machine); with nothing there, it ends within one Gap. Real TCP:
// the bytes must be waiting in the socket before the call.
func TestReadMessageLateStart(t *testing.T) {
	srv, cli := tcpPair(t)
	defer srv.Close()
	defer cli.Close()
	end := MessageEnd{Max: 64, Gap: 200 * time.Millisecond, Timeout: time.Second,
		Complete: func(b []byte) bool { return string(b) == "w" }}
	end.Start = time.Now().Add(-2 * end.Timeout) // its Timeout passed a second ago
	if _, err := cli.Write([]byte("w")); err != nil {
		t.Fatal(err)
	}
	// The byte is in srv's receive queue once srv can read it: wait for
	// that event, not for a time.
	raw, err := srv.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, _ := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return n > 0
	})
	if got, err := ReadMessage(context.Background(), srv, end); err != nil || string(got) != "w" {
		t.Fatalf("late: got %q, %v; want the request that had arrived", got, err)
	}
	start := time.Now()
	if got, err := ReadMessage(context.Background(), srv, end); !errors.Is(err, ErrMessageTimeout) {
		t.Fatalf("late, nothing sent: got %q, %v; want ErrMessageTimeout", got, err)
	}
	if took := time.Since(start); took < end.Gap {
		t.Fatalf("late, nothing sent: ended after %s, before one Gap", took)
	}
}
