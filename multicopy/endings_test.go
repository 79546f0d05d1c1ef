package multicopy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/tcpsock"
)

// A server that closes before sending a byte never answered: Fetch must not
// report the empty transfer as a success (tms always sends at least one
// copy).
func TestFetchEmptyAnswerIsAnError(t *testing.T) {
	client, srv := pipe(t)
	go func() {
		io.Copy(io.Discard, srv) // the message and the half-close
		srv.Close()
	}()
	res, err := Fetch(context.Background(), client, []byte("abc"), nil, FetchOptions{IdleTimeout: 5 * time.Second})
	if !errors.Is(err, ErrEmptyAnswer) {
		t.Fatalf("err = %v, want ErrEmptyAnswer", err)
	}
	if res == nil || res.Stats.Total() != 0 {
		t.Fatalf("res = %+v", res)
	}
}

// A reset after some bytes: one plain line naming what arrived, no Go
// "read tcp A->B: read:" layers.
func TestFetchResetIsOnePlainLine(t *testing.T) {
	client, srv := pipe(t)
	go func() {
		buf := make([]byte, 16)
		srv.Read(buf)
		srv.Write([]byte("abcabc"))
		tcpsock.Reset(srv)
		srv.Close()
	}()
	var got int
	res, err := Fetch(context.Background(), client, []byte("abc"), func(c []byte) { got += len(c) }, FetchOptions{IdleTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("a reset was reported as a success")
	}
	want := "the server reset the connection after "
	if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "tcp") {
		t.Fatalf("err = %q, want it to start %q", err, want)
	}
	if res.Stats.Total() != int64(got) {
		t.Fatalf("result holds %d bytes, callback saw %d", res.Stats.Total(), got)
	}
}

// The wait for the go-ahead is not part of the transfer time.
func TestFetchSplitsWaitFromTransfer(t *testing.T) {
	client, srv := pipe(t)
	release := make(chan struct{})
	s := &Server{Copies: 3, GoAhead: func(ctx context.Context, msg []byte) error {
		<-release
		return nil
	}}
	go func() {
		s.Echo(context.Background(), srv)
		srv.Close()
	}()
	const late = 300 * time.Millisecond
	time.AfterFunc(late, func() { close(release) }) // the pause is the point: a go-ahead typed late
	res, err := Fetch(context.Background(), client, []byte("abc"), nil, FetchOptions{IdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The wait holds the pause, and the transfer is what is left of the
	// whole: not "the transfer is short", which a loaded machine can
	// make false.
	if res.Wait < late || res.Transfer > res.Elapsed-late || res.Wait+res.Transfer > res.Elapsed {
		t.Fatalf("wait %v, transfer %v, elapsed %v", res.Wait, res.Transfer, res.Elapsed)
	}
}

// A server stopped mid-transfer (past --grace) ends the connection with a
// reset, so the client cannot take a cut answer for a whole one; the
// handler logs it as a reset.
func TestServerStoppedMidTransferResets(t *testing.T) {
	var log strings.Builder
	s := &Server{Copies: math.MaxInt64 / 4, Logger: newTextLogger(&log)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Handler: s}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	arrived := make(chan struct{})
	var once bool
	done := make(chan error, 1)
	go func() {
		_, err := Fetch(context.Background(), conn, []byte("abcd"), func([]byte) {
			if !once {
				once = true
				close(arrived)
			}
		}, FetchOptions{IdleTimeout: 10 * time.Second})
		done <- err
	}()
	<-arrived
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: close what is in flight now
	srv.Shutdown(ctx)
	<-served
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("client: %v, want a reset", err)
	}
	if !strings.Contains(log.String(), "transfer reset") {
		t.Fatalf("log %q does not say the transfer was reset", log.String())
	}
}

// copies × the message's length must fit in an int64.
func TestEchoRefusesAnOverflowingTotal(t *testing.T) {
	client, srv := pipe(t)
	s := &Server{Copies: math.MaxInt64}
	done := make(chan error, 1)
	go func() {
		_, err := s.Echo(context.Background(), srv)
		srv.Close()
		done <- err
	}()
	_, ferr := Fetch(context.Background(), client, []byte("abc"), nil, FetchOptions{IdleTimeout: 5 * time.Second})
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("server: %v", err)
	}
	if ferr == nil {
		t.Fatal("client saw success")
	}
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// A complete transfer ends with FIN even when the client sent more than its
// message (bytes after the newline that ends it, as "abc\n" followed by
// more): closing a socket with unread bytes makes the kernel reset it and
// drop what is still queued to send, so the client lost megabytes of a
// transfer the server logged as done. The server now drains what the
// client sends until the client closes, after its own FIN.
func TestCompleteTransferEndsWithFINDespiteExtraBytes(t *testing.T) {
	for _, halfClose := range []bool{false, true} {
		name := "client never half-closes (tmc.py)"
		if halfClose {
			name = "client half-closes (tmc)"
		}
		t.Run(name, func(t *testing.T) {
			client, srv := pipe(t)
			const copies = 2_000_000 // 8 MB: more than the socket buffers hold
			served := make(chan error, 1)
			go func() {
				s := &Server{Copies: copies}
				_, err := s.Echo(context.Background(), srv)
				srv.Close()
				served <- err
			}()
			// The extra bytes arrive with the message, in the same read.
			if _, err := client.Write([]byte("abc\n" + strings.Repeat("x", 40_000))); err != nil {
				t.Fatal(err)
			}
			if halfClose {
				client.(*net.TCPConn).CloseWrite()
			}
			n, err := io.Copy(io.Discard, client)
			client.Close()
			if err != nil || n != copies*4 {
				t.Errorf("client got %d of %d bytes, err %v: want all of them and a FIN", n, copies*4, err)
			}
			if err := <-served; err != nil {
				t.Errorf("Echo: %v", err)
			}
		})
	}
}

// The drain after the last copy ends as soon as the client has all of it
// (its kernel acknowledged the FIN), not when the client closes: a client
// that keeps its side open (nc with a terminal on its input) held the
// one-client tms for all of --write-timeout after a complete transfer.
func TestFinishDoesNotWaitForAClientThatStaysOpen(t *testing.T) {
	client, srv := pipe(t)
	served := make(chan error, 1)
	go func() {
		s := &Server{Copies: 1000, WriteTimeout: time.Minute}
		_, err := s.Echo(context.Background(), srv)
		served <- err
	}()
	if _, err := client.Write([]byte("abc\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, client); err != nil || n != 4000 {
		t.Fatalf("got %d of 4000 bytes, err %v", n, err)
	}
	// The client has everything and stays open.
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Echo still waiting for a client that has the whole answer")
	}
}

// A slow reader that keeps reading gets the end of its answer however
// long the answer queued in the kernel takes to drain: finish waited at
// most WriteTimeout in all after the last write, so a client reading a few
// megabytes at its own pace was reset and logged as failed (the binary
// test of a SIGINT within --grace found it). WriteTimeout bounds a wait
// without progress, as it does for the writes.
func TestFinishWaitsForASlowReaderThatKeepsReading(t *testing.T) {
	client, srv := pipe(t)
	const copies = 1_000_000 // 4 MB
	served := make(chan error, 1)
	go func() {
		// The copies fit the socket buffers after a few writes, so most of
		// the wait is in finish; each read takes the client far less than
		// WriteTimeout, the whole answer far more (at least 5 s, 2.5 times
		// WriteTimeout). WriteTimeout was 100 ms, then 500 ms: under -race
		// on a loaded machine the reader was not run for that long (2 of
		// 20 runs at 100 ms, once at a load average of 22 at 500 ms), and
		// Echo gave up on it. 2 s of a goroutine not run is far rarer.
		s := &Server{Copies: copies, WriteTimeout: 2 * time.Second}
		_, err := s.Echo(context.Background(), srv)
		served <- err
	}()
	if _, err := client.Write([]byte("abc\n")); err != nil {
		t.Fatal(err)
	}
	var n int64
	buf := make([]byte, 8<<10)
	var err error
	for {
		var k int
		k, err = client.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // a slow reader: the pace is the point
	}
	if !errors.Is(err, io.EOF) || n != copies*4 {
		t.Errorf("client got %d of %d bytes, then %v: want all of them and a FIN", n, copies*4, err)
	}
	if err := <-served; err != nil {
		t.Errorf("Echo: %v", err)
	}
}
