package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/multicopy"
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
	want := []string{"ports", "chunks", "link", "loss", "blocking", "sendall", "lines", "tail", "nonblocking", "poll", "udp", "status", "shared"}
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

// Every lesson gives up promptly, leaving nothing behind (testkit.Main
// checks for goroutines), when its context ends before or during the run.
func TestLessonsStopWhenCancelled(t *testing.T) {
	for _, after := range []time.Duration{0, 50 * time.Millisecond} {
		for _, l := range Lessons() {
			t.Run(fmt.Sprintf("%s/after_%v", l.Name, after), func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				if after == 0 {
					cancel()
				} else {
					time.AfterFunc(after, cancel)
				}
				defer cancel()
				done := make(chan error, 1)
				go func() {
					_, err := l.Run(ctx, &bytes.Buffer{}, Options{OutDir: t.TempDir()})
					done <- err
				}()
				select {
				case err := <-done:
					if after == 0 && err == nil {
						t.Fatal("a cancelled lesson reported success")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("a cancelled lesson did not return")
				}
			})
		}
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

// The ports lesson counts its own connections in TIME_WAIT, not every
// socket on its port: another connection that used the same port number
// (as its ephemeral port, minutes before, in any process) may still be in
// TIME_WAIT. (Before: TestPorts saw "TIME_WAIT connections = 3, want 2"
// on a busy CI machine.)
func TestCountTimeWaitCountsOnlyItsConnections(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var peers []int
	for range 3 {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		s.Close() // the server closes first: its side ends in TIME_WAIT
		io.Copy(io.Discard, c)
		c.Close()
		peers = append(peers, port(c.LocalAddr()))
	}
	server := port(ln.Addr())
	if n := waitTimeWait(context.Background(), server, peers); n != 3 {
		t.Fatalf("all three connections: %d in TIME_WAIT, want 3", n)
	}
	if n, err := countTimeWait(server, peers[:2]); err != nil || n != 2 {
		t.Fatalf("two of the three: %d in TIME_WAIT, %v; want 2", n, err)
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

func TestChunks(t *testing.T) {
	o, _ := run[*ChunksObservations](t, Chunks)
	want := 0
	for _, r := range chunkRuns {
		want += r.times
	}
	if len(o.Runs) != want {
		t.Fatalf("%d runs, want %d", len(o.Runs), want)
	}
	for i, r := range o.Runs {
		var sum int64
		for _, n := range r.Stats.Sizes {
			sum += int64(n)
		}
		if r.Stats.Total() != r.Expected || sum != r.Expected || int64(len(r.Stats.Sizes)) != r.Stats.Count() {
			t.Errorf("run %d: %d bytes in %d reads (sizes sum to %d), want %d", i, r.Stats.Total(), r.Stats.Count(), sum, r.Expected)
		}
		if r.Stats.Max() > multicopy.ReadBufferSize {
			t.Errorf("run %d: a read of %d bytes, more than the buffer", i, r.Stats.Max())
		}
	}
	// The large transfer cannot fit one read of tmc's buffer.
	if last := o.Runs[len(o.Runs)-1]; last.Stats.Count() < 2 {
		t.Errorf("%d bytes arrived in %d read(s)", last.Stats.Total(), last.Stats.Count())
	}
	if o.Chunkings < 1 {
		t.Errorf("chunkings = %d", o.Chunkings)
	}
	if fi, err := os.Stat(o.PlotPath); err != nil || fi.Size() == 0 {
		t.Errorf("plot %q: %v", o.PlotPath, err)
	}
}

func TestBlocking(t *testing.T) {
	o, _ := run[*BlockingObservations](t, Blocking)
	if !(o.Sent <= o.ServerGotMessage && o.ServerGotMessage < o.GoAhead && o.GoAhead <= o.FirstRead && o.FirstRead <= o.EOF) {
		t.Errorf("timeline out of order: sent %v, server got %v, go-ahead %v, first read %v, EOF %v",
			o.Sent, o.ServerGotMessage, o.GoAhead, o.FirstRead, o.EOF)
	}
	if o.FirstRead-o.Sent < goAheadPause {
		t.Errorf("the read returned %v after the send, before the %v go-ahead pause", o.FirstRead-o.Sent, goAheadPause)
	}
	if o.Bytes != 3*multicopy.DefaultCopies {
		t.Errorf("received %d bytes", o.Bytes)
	}
}

func TestStatus(t *testing.T) {
	o, _ := run[*StatusObservations](t, Status)
	if o.Lines["w"] < 1 || o.Lines["ps"] < 2 {
		t.Errorf("w gave %d lines, ps %d: want their output", o.Lines["w"], o.Lines["ps"])
	}
	for _, refused := range []string{"rm", "w; rm -rf ~"} {
		ans := o.Answers[refused]
		if !strings.HasPrefix(ans, "unknown command "+strconv.Quote(refused)) || o.Lines[refused] != 1 {
			t.Errorf("%q answered %q, want one refusal line", refused, ans)
		}
	}
	if len(o.ClientLog) != len(statusAsks) || !strings.HasPrefix(o.ClientLog[0], "client is at 127.0.0.1:") {
		t.Errorf("server log %q, want one \"client is at\" line per request", o.ClientLog)
	}
}

func TestNonblocking(t *testing.T) {
	o, _ := run[*NonblockingObservations](t, Nonblocking)
	for name, s := range map[string]Session{"round-robin": o.RoundRobin, "goroutines": o.Goroutines} {
		for i := range s.Replies {
			if !slices.Equal(s.Replies[i], tutorialReplies[i]) {
				t.Errorf("%s: client %d printed %q, the tutorial's printed %q", name, i+1, s.Replies[i], tutorialReplies[i])
			}
		}
		if s.Final != tutorialFinal {
			t.Errorf("%s: final v %q, want %q", name, s.Final, tutorialFinal)
		}
	}
	// The round-robin loop spins between keystrokes: most of its recv()
	// calls find nothing, and its thread alone outspends the goroutine
	// server's whole process.
	if o.EmptyRecvs < 100*int64(len(tutorialSession)) || o.Recvs <= o.EmptyRecvs {
		t.Errorf("%d recv() calls, %d empty: the loop did not spin", o.Recvs, o.EmptyRecvs)
	}
	if o.LoopCPU <= o.Goroutines.CPU {
		t.Errorf("round-robin thread CPU %v, goroutine server process CPU %v", o.LoopCPU, o.Goroutines.CPU)
	}
}

func TestShared(t *testing.T) {
	o, _ := run[*SharedObservations](t, Shared)
	if len(o.Final) != o.Clients*o.Letters {
		t.Errorf("v has %d bytes, want %d", len(o.Final), o.Clients*o.Letters)
	}
	for i := range o.Clients {
		l := string(crowdLetter(i))
		if n := strings.Count(o.Final, l); n != o.Letters {
			t.Errorf("v holds %d %q, want %d", n, l, o.Letters)
		}
	}
	if o.Inconsistent != 0 {
		t.Errorf("%d replies were not v right after their letter", o.Inconsistent)
	}
	if o.BeforeRestart != "abc" || o.AfterRestart != "abcd" {
		t.Errorf("restart: %q then %q, want \"abc\" then \"abcd\"", o.BeforeRestart, o.AfterRestart)
	}
}

func TestLink(t *testing.T) {
	o, out := run[*LinkObservations](t, Link)
	if o.Skipped != "" {
		checkSkippedInOneLine(t, out)
		t.Skip(o.Skipped)
	}
	if o.MSS > netlab.MTU-40 || o.MSS < 1000 {
		t.Errorf("segment of %d bytes on a %d-byte-MTU link", o.MSS, netlab.MTU)
	}
	want := int64(len(linkMessage)) * linkCopies
	if o.Link.Total() != want || o.Loopback.Total() != want {
		t.Fatalf("received %d on the link and %d on loopback, want %d", o.Link.Total(), o.Loopback.Total(), want)
	}
	// At 1 Mbit/s the reader is always ahead of the link: reads are one
	// segment, and the largest at most a few (a wake-up late under load).
	if o.Link.Median() != o.MSS || o.Link.Max() > 4*o.MSS {
		t.Errorf("link reads: median %d, largest %d; want the %d-byte segment", o.Link.Median(), o.Link.Max(), o.MSS)
	}
	if o.Loopback.Max() <= 4*o.MSS {
		t.Errorf("loopback's largest read is %d bytes, no larger than the link's segments", o.Loopback.Max())
	}
}

func TestLoss(t *testing.T) {
	o, out := run[*LossObservations](t, Loss)
	if o.Skipped != "" {
		checkSkippedInOneLine(t, out)
		t.Skip(o.Skipped)
	}
	if !o.Exact || o.Received != o.Expected {
		t.Errorf("received %d of %d bytes, exact %v", o.Received, o.Expected, o.Exact)
	}
	if o.Retransmits == 0 {
		t.Errorf("no retransmission counted at %.0f%% loss over %d segments", o.Loss*100, o.Segments)
	}
	if !strings.Contains(out, fmt.Sprintf("sent %d of its about", o.Retransmits)) {
		t.Errorf("the narration does not give the retransmissions:\n%s", out)
	}
}

func checkSkippedInOneLine(t *testing.T, out string) {
	t.Helper()
	if n := strings.Count(out, "Skipped:"); n != 1 {
		t.Errorf("%d skip lines, want 1:\n%s", n, out)
	}
}

// Without root the lab lessons say why in one line and report a skip,
// not an error.
func TestLabLessonsSkipInOneLineWithoutALink(t *testing.T) {
	for _, l := range []Lesson{Link, Loss} {
		var out bytes.Buffer
		p := &page{w: &out}
		if reason := skipLab(p); reason == "" {
			t.Skip("a link can be made here")
		}
		if strings.Count(out.String(), "\n") != 1 {
			t.Errorf("%s: skip narration %q, want one line", l.Name, out.String())
		}
	}
}
