package demo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// run runs lesson l, fails the test on error, and returns its observations
// as type T and its narration.
func run[T Observations](t *testing.T, l Lesson) (T, string) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := l.Run(ctx, &out, Options{OutDir: t.TempDir()})
	if err != nil {
		t.Fatalf("%s: %v\n%s", l.Name, err, out.String())
	}
	typed, ok := obs.(T)
	if !ok {
		t.Fatalf("%s returned %T", l.Name, obs)
	}
	t.Logf("%s\n%s  -> %s", Header(l), out.String(), obs.Summary())
	if !strings.Contains(out.String(), "Seen:") {
		t.Errorf("%s narrates nothing it saw", l.Name)
	}
	return typed, out.String()
}

func TestLessonsAreListedInTourOrder(t *testing.T) {
	want := []string{"ports", "chunks", "blocking", "sendall", "lines", "tail", "nonblocking", "poll", "udp", "status", "shared"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, l := range Lessons() {
		if l.Title == "" || l.Section == "" || l.Run == nil {
			t.Errorf("lesson %q is incomplete: %+v", l.Name, l)
		}
		if got, ok := Lookup(l.Name); !ok || got.Name != l.Name {
			t.Errorf("Lookup(%q) = %v, %v", l.Name, got.Name, ok)
		}
	}
	if _, ok := Lookup("nosuch"); ok {
		t.Error("Lookup found a lesson that does not exist")
	}
}

// Every lesson gives up at once, leaving nothing behind, when its context
// is already over.
func TestLessonsStopWhenCancelled(t *testing.T) {
	for _, l := range Lessons() {
		t.Run(l.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			done := make(chan error, 1)
			go func() {
				_, err := l.Run(ctx, &bytes.Buffer{}, Options{OutDir: t.TempDir()})
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a cancelled lesson reported success")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a cancelled lesson did not return")
			}
		})
	}
}

func TestPorts(t *testing.T) {
	o, out := run[*PortsObservations](t, Ports)
	c := o.ClientPorts
	if c[0] == 0 || c[1] == 0 || c[0] == c[1] || c[0] == o.ServerPort || c[1] == o.ServerPort {
		t.Errorf("client ports %v, server port %d: want two distinct ephemeral ports", c, o.ServerPort)
	}
	if o.AcceptedRemotePorts != c {
		t.Errorf("the server saw the clients on %v, the clients are on %v", o.AcceptedRemotePorts, c)
	}
	if o.AcceptedLocalPorts != [2]int{o.ServerPort, o.ServerPort} {
		t.Errorf("connected sockets on %v, want both on the listening port %d", o.AcceptedLocalPorts, o.ServerPort)
	}
	if o.TimeWait != 2 {
		t.Errorf("TIME_WAIT connections = %d, want 2", o.TimeWait)
	}
	if !errors.Is(o.PlainBindErr, unix.EADDRINUSE) {
		t.Errorf("plain bind during TIME_WAIT: %v, want EADDRINUSE", o.PlainBindErr)
	}
	if o.GoRelistenErr != nil {
		t.Errorf("net.Listen on the same port: %v", o.GoRelistenErr)
	}
	for _, p := range []int{c[0], c[1], o.ServerPort} {
		if !strings.Contains(out, strconv.Itoa(p)) {
			t.Errorf("the narration does not show port %d", p)
		}
	}
}

func TestSendall(t *testing.T) {
	o, _ := run[*SendallObservations](t, Sendall)
	if o.OneSend <= 0 || o.OneSend >= o.Size {
		t.Errorf("one send() took %d of %d bytes, want a short count", o.OneSend, o.Size)
	}
	sum := 0
	for _, n := range o.LoopSends {
		sum += n
	}
	if len(o.LoopSends) < 2 || sum != o.Size {
		t.Errorf("the send loop made %d calls for %d bytes, want several for %d", len(o.LoopSends), sum, o.Size)
	}
	if o.WriteN != o.Size || o.WriteErr != nil {
		t.Errorf("Write = %d, %v; want %d, nil", o.WriteN, o.WriteErr, o.Size)
	}
	if o.ShortN >= o.Size || !errors.Is(o.ShortErr, os.ErrDeadlineExceeded) {
		t.Errorf("Write with a deadline to a non-reader = %d, %v; want short with a deadline error", o.ShortN, o.ShortErr)
	}
}

func TestLines(t *testing.T) {
	o, _ := run[*LinesObservations](t, Lines)
	if !slices.Equal(o.Reads, linesWrites) {
		t.Errorf("reads %q, want one per write %q", o.Reads, linesWrites)
	}
	if want := []string{"moon, sun", "and", "stars"}; !slices.Equal(o.Lines, want) {
		t.Errorf("lines %q, want %q", o.Lines, want)
	}
	if o.Split != "and" {
		t.Errorf("split line %q, want \"and\"", o.Split)
	}
}

func TestStraddling(t *testing.T) {
	cases := []struct {
		reads []string
		want  []string
	}{
		{[]string{"a\nb", "c\n"}, []string{"bc"}},
		{[]string{"a\n", "b\n"}, nil},
		{[]string{"ab", "cd", "e\nf\n"}, []string{"abcde"}},
		{[]string{"x\ny", "\n"}, []string{"y"}},
	}
	for _, c := range cases {
		if got := straddling(c.reads); !slices.Equal(got, c.want) {
			t.Errorf("straddling(%q) = %q, want %q", c.reads, got, c.want)
		}
	}
}

func TestTail(t *testing.T) {
	o, _ := run[*TailObservations](t, Tail)
	if !o.EOFReaderAfterClose || o.EOFReaderWait < tailPause {
		t.Errorf("io.ReadAll returned %v after the first line (after close: %v); want after the %v pause and the close",
			o.EOFReaderWait, o.EOFReaderAfterClose, tailPause)
	}
	if !o.LineReaderBeforeMore {
		t.Error("the line reader did not hand over line 1 until more was sent")
	}
	if !errors.Is(o.NoHalfCloseErr, os.ErrDeadlineExceeded) {
		t.Errorf("server without half-close: %v, want a timeout", o.NoHalfCloseErr)
	}
	if o.HalfCloseReply != "got 2 bytes\n" {
		t.Errorf("reply after CloseWrite = %q", o.HalfCloseReply)
	}
	// Delayed ACK is a kernel timer of at least 40 ms on Linux: a lower
	// bound that load can only raise.
	if o.NagleMedian < 20*time.Millisecond {
		t.Errorf("Nagle on: median round %v, want the delayed-ACK wait (about 40 ms)", o.NagleMedian)
	}
}

func TestPoll(t *testing.T) {
	o, _ := run[*PollObservations](t, Poll)
	if o.Conns != pollConnLimit() || o.Held != o.Conns {
		t.Errorf("opened %d, held %d; want %d held", o.Conns, o.Held, pollConnLimit())
	}
	if o.Goroutines < o.Conns {
		t.Errorf("%d more goroutines for %d connections", o.Goroutines, o.Conns)
	}
	if o.GoBytesPerConn <= 0 || o.GoBytesPerConn > 64<<10 {
		t.Errorf("%d bytes per idle connection, want a few KiB", o.GoBytesPerConn)
	}
	if o.EchoRTT <= 0 {
		t.Error("no echo timed")
	}
	if want := []string{"c3", "c1", "c2"}; !slices.Equal(o.EpollOrder, want) {
		t.Errorf("epoll loop served %q, want %q", o.EpollOrder, want)
	}
	if want := []string{"got c3", "got c1", "got c2"}; !slices.Equal(o.EpollReplies, want) {
		t.Errorf("replies %q, want %q", o.EpollReplies, want)
	}
	if o.EpollWaits < 3 {
		t.Errorf("%d epoll_wait calls for three messages", o.EpollWaits)
	}
}

func TestUDP(t *testing.T) {
	o, _ := run[*UDPObservations](t, UDP)
	if len(o.UDPReads) != 4 || !slices.Equal(o.UDPReads, o.Writes) {
		t.Errorf("UDP reads %v, want the four writes %v", o.UDPReads, o.Writes)
	}
	total := 0
	for _, n := range o.Writes {
		total += n
	}
	if !slices.Equal(o.TCPReads, []int{total}) {
		t.Errorf("TCP reads %v, want one read of all %d bytes", o.TCPReads, total)
	}
	if o.MaxDatagram != 65507 {
		t.Errorf("largest datagram read %d, want 65507", o.MaxDatagram)
	}
	if !errors.Is(o.OversizeErr, unix.EMSGSIZE) {
		t.Errorf("65508-byte datagram: %v, want EMSGSIZE", o.OversizeErr)
	}
	if o.UnconnectedErr != nil || !errors.Is(o.UnconnectedLaterErr, os.ErrDeadlineExceeded) {
		t.Errorf("unconnected send to nobody: %v, then %v; want no error, then only a timeout", o.UnconnectedErr, o.UnconnectedLaterErr)
	}
	if !errors.Is(o.ConnectedLaterErr, unix.ECONNREFUSED) {
		t.Errorf("connected send to nobody, then read: %v, want ECONNREFUSED", o.ConnectedLaterErr)
	}
}
