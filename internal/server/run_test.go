package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// finishing is a handler that holds each connection until release and
// reports done when finish is closed: a protocol with its own end.
type finishing struct {
	started chan struct{}
	release chan struct{}
	ended   chan struct{}
	finish  chan struct{}
}

func newFinishing() *finishing {
	return &finishing{make(chan struct{}, 16), make(chan struct{}), make(chan struct{}, 16), make(chan struct{})}
}

func (f *finishing) ServeConn(ctx context.Context, c net.Conn) {
	f.started <- struct{}{}
	defer func() { f.ended <- struct{}{} }()
	select {
	case <-f.release:
	case <-ctx.Done():
	}
}

func (f *finishing) Done() <-chan struct{} { return f.finish }

func dialHeld(t *testing.T, ln net.Listener, f *finishing) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	<-f.started
	return c
}

func runIn(ctx context.Context, s *Server, ln net.Listener) <-chan error {
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, ln) }()
	return ran
}

// A stop signal (ctx) lets a connection in flight finish within Grace:
// Run returns only after its handler has, and nil.
func TestRunDrainsWithinGrace(t *testing.T) {
	ln := listen(t)
	f := newFinishing()
	s := &Server{Handler: f, Grace: time.Hour}
	ctx, stop := context.WithCancel(context.Background())
	ran := runIn(ctx, s, ln)
	dialHeld(t, ln, f)
	stop()
	select {
	case err := <-ran:
		t.Fatalf("Run returned %v with a connection in flight and grace left", err)
	case <-s.done: // stopped accepting: the drain has begun
	}
	close(f.release)
	<-f.ended
	if err := <-ran; err != nil {
		t.Fatalf("Run after a drained stop: %v", err)
	}
}

// Hurry (a second signal) ends the grace period at once.
func TestRunHurryClosesWhatIsLeft(t *testing.T) {
	ln := listen(t)
	f := newFinishing()
	hurry := make(chan struct{})
	s := &Server{Handler: f, Grace: time.Hour, Hurry: hurry}
	ctx, stop := context.WithCancel(context.Background())
	ran := runIn(ctx, s, ln)
	c := dialHeld(t, ln, f)
	stop()
	<-s.done
	close(hurry)
	if err := <-ran; err != nil {
		t.Fatalf("Run after a hurried stop: %v", err)
	}
	<-f.ended
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the held client's connection was not closed: %v", err)
	}
}

// A handler that says it is done (Finisher) stops Run as a signal would;
// a Grace of none closes the connections left at once.
func TestRunStopsWhenTheHandlerIsDone(t *testing.T) {
	ln := listen(t)
	f := newFinishing()
	s := &Server{Handler: f, Grace: -1}
	ran := runIn(context.Background(), s, ln)
	dialHeld(t, ln, f)
	close(f.finish)
	if err := <-ran; err != nil {
		t.Fatalf("Run after its handler was done: %v", err)
	}
	<-f.ended
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still accepting after Run returned")
	}
}

// hurried without a Hurry channel is its context, which a nil Hurry
// never ends.
func TestHurriedNil(t *testing.T) {
	ctx := context.Background()
	if hurried(ctx, nil) != ctx || isClosed(nil) {
		t.Fatal("a nil Hurry can end the grace period")
	}
}

// A Grace of none closes what is in flight at once after a stop signal, and
// says so in the log as a spent grace period did before Run existed
// (tms --keep --grace 0, svr --grace 0): an operator sees why the
// transfers ended.
func TestRunWithoutGraceSaysItClosed(t *testing.T) {
	ln := listen(t)
	f := newFinishing()
	var logs testkit.SafeBuffer
	s := &Server{Handler: f, Grace: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, stop := context.WithCancel(context.Background())
	ran := runIn(ctx, s, ln)
	dialHeld(t, ln, f)
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run after a stop with no grace: %v", err)
	}
	<-f.ended
	if !strings.Contains(logs.String(), `msg="grace period over; closed remaining connections"`) {
		t.Fatalf("log after a stop with --grace 0 and a connection in flight:\n%s\nwant the line saying the connections were closed", logs.String())
	}
}

// nothingToFinish is a protocol whose Configure says it has nothing to
// finish: a Grace of none, where the caller left it zero.
type nothingToFinish struct{ *finishing }

func (n nothingToFinish) Configure(s *Server) {
	if s.Grace == 0 {
		s.Grace = -1
	}
}

// A Grace of none that the protocol chose (nothing to finish: strsvr)
// closes at once on a signal and says nothing of a grace period; one the
// caller chose (svr --grace 0) says that it is over.
func TestRunNegativeGraceSaysNoGrace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
		want  bool // the "grace period over" line
	}{{"the protocol's", 0, false}, {"the caller's", -1, true}} {
		var log testkit.SafeBuffer
		ln := listen(t)
		f := newFinishing()
		s := &Server{Handler: nothingToFinish{f}, Grace: tc.grace, Logger: slog.New(slog.NewTextHandler(&log, nil))}
		ctx, stop := context.WithCancel(context.Background())
		ran := runIn(ctx, s, ln)
		dialHeld(t, ln, f)
		stop()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
		<-f.ended
		if got := strings.Contains(log.String(), "grace period over"); got != tc.want {
			t.Errorf("%s none: logged %q; want the grace line %v", tc.name, log.String(), tc.want)
		}
	}
}

// A zero Grace is DefaultGrace: a connection in flight is given it, not
// closed at once (it was closed at once before the zero was a default).
func TestRunZeroGraceIsTheDefault(t *testing.T) {
	var log testkit.SafeBuffer
	ln := listen(t)
	f := newFinishing()
	s := &Server{Handler: f, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	ctx, stop := context.WithCancel(context.Background())
	ran := runIn(ctx, s, ln)
	dialHeld(t, ln, f)
	stop()
	if !testkit.WaitWritten(time.Minute, nil, func(text string) bool { return strings.Contains(text, "shutting down") }, &log) {
		t.Fatalf("no stop logged: %q", log.String())
	}
	if !strings.Contains(log.String(), "grace="+DefaultGrace.String()) {
		t.Errorf("log %q: want the stop to give grace=%s", log.String(), DefaultGrace)
	}
	close(f.release) // the connection finishes within the grace
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "grace period over") {
		t.Errorf("log %q: the grace ran out; want the connection to finish within it", log.String())
	}
}
