package multicopy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/testkit"
)

// runOne serves s to one client as tms does (One on server.AcceptOnce)
// and returns the address, the handler and Run's result.
func runOne(t *testing.T, ctx context.Context, s *Server, grace time.Duration) (string, *One, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	one := NewOne(s)
	srv := &server.Server{Handler: one, Grace: grace, Logger: s.Logger}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx, server.AcceptOnce(ln)) }()
	return ln.Addr().String(), one, ran
}

// tms.py's life, served by internal/server: the first client gets its
// copies, a second is refused by the kernel once the first is in, and
// Run returns by itself after the one client (One is a Finisher), whose
// "transfer done" is the last line, as tms.py's (no "done: stopping").
func TestOneServesOneClientThenStops(t *testing.T) {
	var log testkit.SafeBuffer
	addr, one, ran := runOne(t, t.Context(), &Server{Copies: 3, Logger: slog.New(slog.NewTextHandler(&log, nil))}, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("abc\n"))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != strings.Repeat("abc\n", 3) {
		t.Fatalf("answer %q, %v; want 3 copies of abc\\n", got, err)
	}
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a second client: %v; want the connection refused", err)
	}
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if tr, err := one.Result(); err != nil || tr.Sent != 12 {
		t.Fatalf("Result: sent %d, %v; want 12, nil", tr.Sent, err)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `msg="transfer done"`) {
		t.Errorf("last log line %q; want the transfer done (log %q)", last, log.String())
	}
}

// A stop while the go-ahead waits ends the wait at once, however long the
// grace (server.Stopping): the transfer has not begun, and nothing is
// sent.
func TestOneStopEndsTheGoAheadAtOnce(t *testing.T) {
	ctx, stop := context.WithCancel(t.Context())
	asked := make(chan struct{})
	s := &Server{GoAhead: func(ctx context.Context, msg []byte) error {
		close(asked)
		<-ctx.Done()
		return ctx.Err()
	}}
	addr, one, ran := runOne(t, ctx, s, time.Hour)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("abc\n"))
	<-asked
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := one.Result(); !errors.Is(err, ErrCutShort) {
		t.Fatalf("Result: %v; want ErrCutShort", err)
	}
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Fatalf("the client got %q; want nothing", got)
	}
}

// A stop before any client came says nothing (tms.py's Ctrl-C at its
// accept): no "shutting down" of a grace with nothing in it, no line at
// all, and Run returns at once.
func TestOneStopBeforeAClientSaysNothing(t *testing.T) {
	for _, grace := range []time.Duration{-1, time.Hour} {
		var log testkit.SafeBuffer
		ctx, stop := context.WithCancel(t.Context())
		_, one, ran := runOne(t, ctx, &Server{Logger: slog.New(slog.NewTextHandler(&log, nil))}, grace)
		stop()
		if err := <-ran; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if tr, err := one.Result(); err != nil || tr.Sent != 0 {
			t.Errorf("Result: %+v, %v; want nothing", tr, err)
		}
		if log.String() != "" {
			t.Errorf("grace %s: logged %q; want nothing", grace, log.String())
		}
	}
}
