package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/tcplab/tcplab/stream"
)

// lessonTail is the tail-end problem of section 5.3: a reader that waits for end
// of file sees nothing until the sender closes, one that takes lines as they
// come does not wait; half-close says "done sending" without closing; and
// the sender-side delay the tutorial describes, Nagle's algorithm, measured
// on and off.
var lessonTail = Lesson{
	Name:        "tail",
	Title:       "the tail end: EOF readers, half-close, Nagle on and off",
	Section:     "5.3",
	WritesFiles: true,
	Run:         runTail,
}

// tailObservations is what the tail lesson measured.
type tailObservations struct {
	// EOFReaderWait is how long io.ReadAll (readlines()) returned after the
	// first line was sent: it waited for the close.
	EOFReaderWait time.Duration
	// EOFReaderAfterClose: io.ReadAll returned only after the sender closed.
	EOFReaderAfterClose bool
	// LineReaderFirst is how long the line-at-a-time reader took to hand
	// over the first line after it was sent.
	LineReaderFirst time.Duration
	// LineReaderBeforeMore: the line reader handed over line 1 before the
	// sender had sent anything more (the sender waited for it).
	LineReaderBeforeMore bool

	// NoHalfCloseErr is what a server reading the request to end of file
	// got when the client sent it without half-closing: a timeout.
	NoHalfCloseErr error
	// HalfCloseReply is the reply the client read after CloseWrite.
	HalfCloseReply string

	// Rounds is the number of write-write-read rounds timed per setting.
	Rounds int
	// NagleMedian and NoDelayMedian are the median round times with
	// Nagle's algorithm on (SetNoDelay(false), Python's default) and off
	// (Go's default).
	NagleMedian, NoDelayMedian time.Duration

	// link is the same rounds on the lab link, captured; nil where no
	// link can be made.
	link *tailLink
}

// Summary implements Observations.
func (o *tailObservations) Summary() string {
	return fmt.Sprintf("ReadAll waited %s for the close, line reader %s; half-close got %q; write-write-read: Nagle on %s, off %s",
		ms(o.EOFReaderWait), ms(o.LineReaderFirst), o.HalfCloseReply, ms(o.NagleMedian), ms(o.NoDelayMedian))
}

// tailPause is how long the sender holds back before closing, so the EOF
// reader's wait is plain to see.
const tailPause = 300 * time.Millisecond

// nagleRounds is enough write-write-read rounds for a stable median; with
// Nagle on each costs a delayed-ACK timeout (about 40 ms on Linux).
const nagleRounds = 7

func runTail(ctx context.Context, w io.Writer, opts Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &tailObservations{Rounds: nagleRounds}

	p.tutorial("readlines() may wait until the sender closes; iterate over the lines instead (section 5.3).")
	if err := tailReaders(ctx, obs); err != nil {
		return nil, err
	}
	p.do("send three lines, the last %s after the first, then close; read with io.ReadAll and with bufio.", ms(tailPause))
	p.saw("io.ReadAll (readlines()) returned %s after the first line was sent, after the close: %v.",
		ms(obs.EOFReaderWait), obs.EOFReaderAfterClose)
	p.saw("bufio, a line at a time (for line in flo), had the first line %s after it was sent.", ms(obs.LineReaderFirst))

	p.tutorial("the simplest fix is for the sender to close; that costs a connection per exchange.")
	if err := tailHalfClose(ctx, obs); err != nil {
		return nil, err
	}
	p.do("a server reads the request to end of file, then answers; the client sends without and with CloseWrite.")
	p.saw("without half-close the server was still waiting after 300 ms: %s.", errText(obs.NoHalfCloseErr))
	p.saw("with CloseWrite (shutdown(SHUT_WR)) the server saw end of file and the client read the answer %q", obs.HalfCloseReply)
	p.saw("on the same connection.")

	p.tutorial("TCP waits until it has a \"large enough\" chunk before sending: that is Nagle's algorithm.")
	var err error
	if obs.NagleMedian, err = nagleRound(ctx, false); err != nil {
		return nil, err
	}
	if obs.NoDelayMedian, err = nagleRound(ctx, true); err != nil {
		return nil, err
	}
	p.do("%d rounds of write 1 byte, write 1 byte, read the 1-byte answer; Nagle on, then off.", nagleRounds)
	p.saw("median round: %s with Nagle on (the second byte waits for the ACK of the first),", ms(obs.NagleMedian))
	p.saw("%s with TCP_NODELAY.", ms(obs.NoDelayMedian))
	tailOnLink(ctx, p, obs, opts)
	if obs.link != nil && obs.link.err != nil {
		return nil, obs.link.err
	}
	p.note("Go sets TCP_NODELAY on every TCP connection by default; Python does not. Small writes")
	p.note("go out at once in Go, so build a message and write it once (bufio.Writer, then Flush).")
	return obs, p.err()
}

// tailReaders times an EOF reader and a line reader against a sender that
// pauses before closing.
func tailReaders(ctx context.Context, obs *tailObservations) error {
	// The reader that waits for end of file.
	client, server, err := tcpPair(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	defer server.Close()
	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		server.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(server)
		done <- result{time.Now(), err}
	}()
	sentAt := time.Now()
	client.Write([]byte("line 1\n"))
	time.Sleep(tailPause)
	client.Write([]byte("line 2\nline 3\n"))
	closedAt := time.Now()
	client.Close()
	r := <-done
	if r.err != nil {
		return fmt.Errorf("ReadAll: %w", r.err)
	}
	obs.EOFReaderWait = r.at.Sub(sentAt)
	obs.EOFReaderAfterClose = !r.at.Before(closedAt)

	// The reader that takes each line as it comes. The sender sends line 2
	// only once line 1 has been handed over, so a reader that waited for
	// more would wait in vain (and the lesson would fail).
	client2, server2, err := tcpPair(ctx)
	if err != nil {
		return err
	}
	defer client2.Close()
	defer server2.Close()
	got := make(chan time.Time, 1)
	finished := make(chan error, 1)
	go func() {
		server2.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(server2)
		for i := 0; ; i++ {
			_, err := stream.ReadLine(br, maxLine)
			if errors.Is(err, io.EOF) {
				finished <- nil
				return
			}
			if err != nil {
				finished <- err
				return
			}
			if i == 0 {
				got <- time.Now()
			}
		}
	}()
	sentAt = time.Now()
	client2.Write([]byte("line 1\n"))
	select {
	case at := <-got:
		obs.LineReaderFirst = at.Sub(sentAt)
		obs.LineReaderBeforeMore = true
	case <-time.After(2 * time.Second):
	}
	client2.Write([]byte("line 2\nline 3\n"))
	client2.Close()
	if err := <-finished; err != nil {
		return fmt.Errorf("line reader: %w", err)
	}
	return nil
}

// tailHalfClose runs a server that reads its request to end of file, first
// against a client that does not half-close, then one that does.
func tailHalfClose(ctx context.Context, obs *tailObservations) error {
	serve := func(conn net.Conn, wait time.Duration) error {
		conn.SetReadDeadline(time.Now().Add(wait))
		req, err := io.ReadAll(io.LimitReader(conn, 1<<20))
		if err != nil {
			return err
		}
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err = fmt.Fprintf(conn, "got %d bytes\n", len(req))
		return err
	}

	client, server, err := tcpPair(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	defer server.Close()
	client.Write([]byte("w\n"))
	obs.NoHalfCloseErr = serve(server, 300*time.Millisecond)
	if !errors.Is(obs.NoHalfCloseErr, os.ErrDeadlineExceeded) {
		return fmt.Errorf("without half-close the server read: %v", obs.NoHalfCloseErr)
	}

	client2, server2, err := tcpPair(ctx)
	if err != nil {
		return err
	}
	defer client2.Close()
	defer server2.Close()
	served := make(chan error, 1)
	go func() {
		served <- serve(server2, 5*time.Second)
		server2.Close()
	}()
	client2.Write([]byte("w\n"))
	if err := stream.CloseWrite(client2); err != nil {
		return fmt.Errorf("CloseWrite: %w", err)
	}
	client2.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, err := io.ReadAll(client2)
	if serr := <-served; serr != nil {
		return fmt.Errorf("server: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("read reply after CloseWrite: %w", err)
	}
	obs.HalfCloseReply = string(reply)
	return nil
}

// nagleRound times nagleRounds rounds of the write-write-read pattern that
// Nagle's algorithm and delayed ACKs together slow down on loopback, and
// returns the median.
func nagleRound(ctx context.Context, noDelay bool) (time.Duration, error) {
	client, server, err := tcpPair(ctx)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	defer server.Close()
	return nagleRoundsOn(ctx, client, server, noDelay)
}

// nagleRoundsOn runs the rounds on a connection and returns the median.
// It half-closes the client and waits for the server to see it; the
// caller closes both.
func nagleRoundsOn(ctx context.Context, client, server *net.TCPConn, noDelay bool) (time.Duration, error) {
	if err := client.SetNoDelay(noDelay); err != nil {
		return 0, fmt.Errorf("SetNoDelay: %w", err)
	}
	echoed := make(chan error, 1)
	go func() {
		buf := make([]byte, 2)
		for {
			if _, err := io.ReadFull(server, buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				echoed <- err
				return
			}
			if _, err := server.Write([]byte{'k'}); err != nil {
				echoed <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	var times []time.Duration
	reply := make([]byte, 1)
	for range nagleRounds {
		start := time.Now()
		client.Write([]byte{'a'})
		client.Write([]byte{'b'})
		if _, err := io.ReadFull(client, reply); err != nil {
			server.Close()
			<-echoed
			return 0, fmt.Errorf("round trip: %w", err)
		}
		times = append(times, time.Since(start))
		if ctx.Err() != nil {
			break
		}
	}
	client.CloseWrite()
	if err := <-echoed; err != nil {
		return 0, fmt.Errorf("echo: %w", err)
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}
