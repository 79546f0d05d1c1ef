package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lesismal/nbio"
	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/capture"
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
	t.Logf("%s\n%s  -> %s", header(l), out.String(), obs.Summary())
	if !strings.Contains(out.String(), "Seen:") {
		t.Errorf("%s narrates nothing it saw", l.Name)
	}
	return typed, out.String()
}

func TestLessonsAreListedInTourOrder(t *testing.T) {
	want := []string{"mac", "names", "ports", "chunks", "link", "loss", "blocking", "sendall", "lines", "tail", "nonblocking", "poll", "udp", "status", "shared", "libraries"}
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
	o, out := run[*portsObservations](t, lessonPorts)
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
	o, _ := run[*sendallObservations](t, lessonSendall)
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
	o, _ := run[*linesObservations](t, lessonLines)
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
	o, out := run[*tailObservations](t, lessonTail)
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
	tl := o.link
	if tl == nil {
		checkSkippedInOneLine(t, out)
		t.Skip("no lab link: the rounds on the link were skipped")
	}
	// On the wire: with Nagle on, no byte left while an earlier one was
	// unacknowledged, and one waited the delayed ACK; with TCP_NODELAY
	// the second byte of a round went out before the first was ACKed.
	for _, tr := range []*capture.Trace{tl.Nagle, tl.NoDelay} {
		if len(tr.Data) != 2*nagleRounds || tr.Bytes() != 2*nagleRounds {
			t.Errorf("captured %d segments, %d bytes; want %d of 1 byte", len(tr.Data), tr.Bytes(), 2*nagleRounds)
		}
	}
	if tl.NagleUnacked != 0 || tl.NoDelayUnacked == 0 {
		t.Errorf("segments sent with data unacknowledged: Nagle on %d, off %d; want 0 and some", tl.NagleUnacked, tl.NoDelayUnacked)
	}
	if hold := tl.Held.To - tl.Held.From; hold < 20*time.Millisecond {
		t.Errorf("the longest hold on the wire is %v, want the delayed ACK's 40 ms", hold)
	}
	checkWireFiles(t, tl.wire)
	if len(tl.wire.Drawn) != 2 || tl.wire.Drawn[1].Segments != len(tl.NoDelay.Data) {
		t.Errorf("the graph drew %+v", tl.wire.Drawn)
	}
}

func TestPoll(t *testing.T) {
	o, _ := run[*pollObservations](t, lessonPoll)
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

// The poll lesson opens as many idle connections as its descriptor limit
// leaves room for: at most pollConns, pollFDsPerConn descriptors each
// plus pollSpareFDs for the rest of the process, and none (not a division
// by zero, not a wrapped-around count) where the limit is too low. Checked
// for every limit up to past the one that allows them all, and for the
// largest ones. (cmd/tcplab's TestDemoPollUnderALowDescriptorLimit runs
// the lesson under low limits.)
func TestPollConnsFitTheLimit(t *testing.T) {
	limits := []uint64{math.MaxUint64, math.MaxInt64, 1 << 32, unix.RLIM_INFINITY}
	for cur := range uint64(pollFDsPerConn*pollConns + pollSpareFDs + 10) {
		limits = append(limits, cur)
	}
	for _, cur := range limits {
		n := pollConnsFor(cur)
		if n < 0 || n > pollConns {
			t.Fatalf("limit %d: %d connections, want 0 to %d", cur, n, pollConns)
		}
		if n > 0 && uint64(pollFDsPerConn*n+pollSpareFDs) > cur {
			t.Fatalf("limit %d: %d connections need %d descriptors", cur, n, pollFDsPerConn*n+pollSpareFDs)
		}
		if n < pollConns && uint64(pollFDsPerConn*(n+1)+pollSpareFDs) <= cur {
			t.Fatalf("limit %d: only %d connections, room for %d", cur, n, n+1)
		}
	}
}

func TestUDP(t *testing.T) {
	o, _ := run[*udpObservations](t, lessonUDP)
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
	o, _ := run[*chunksObservations](t, lessonChunks)
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
	o, _ := run[*blockingObservations](t, lessonBlocking)
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
	o, _ := run[*statusObservations](t, lessonStatus)
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
	o, _ := run[*nonblockingObservations](t, lessonNonblocking)
	for name, s := range map[string]session{"round-robin": o.RoundRobin, "goroutines": o.Goroutines} {
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
	// calls find nothing. The CPU times the lesson prints are not
	// compared here: how much CPU a spinning thread gets is the
	// scheduler's to say on a loaded machine (a fresh-clone CI run, four
	// at once on two cores, gave the loop's thread 49 ms in 687 ms, less
	// than the goroutine server's whole process); the count of empty
	// recv() calls is the loop's own doing.
	if o.EmptyRecvs < 100*int64(len(tutorialSession)) || o.Recvs <= o.EmptyRecvs {
		t.Errorf("%d recv() calls, %d empty: the loop did not spin", o.Recvs, o.EmptyRecvs)
	}
	if o.LoopCPU <= 0 {
		t.Errorf("round-robin thread CPU %v: its time was not measured", o.LoopCPU)
	}
}

func TestShared(t *testing.T) {
	o, _ := run[*sharedObservations](t, lessonShared)
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
	o, out := run[*linkObservations](t, lessonLink)
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
	if o.Loopback.Max() <= 4*o.MSS {
		t.Errorf("loopback's largest read is %d bytes, no larger than the link's segments", o.Loopback.Max())
	}
	// On the wire: the answer crossed in segments of the MSS, about one
	// per read. Nothing is lost, but on a loaded machine a timer may fire
	// before a delayed ACK and send a segment again: a few at most.
	tr := o.wire.Trace
	sizes := tr.SegmentSizes()
	if tr.Bytes() != want || tr.Retransmissions() > len(sizes)/4 || sumInts(sizes) != int(want) {
		t.Errorf("captured %d bytes in segments sent once summing to %d, %d sent again; want %d, few", tr.Bytes(), sumInts(sizes), tr.Retransmissions(), want)
	}
	// The network cut the chunks: every read is whole segments, the next
	// in order. At 1 Mbit/s the reader is usually ahead of the link, and
	// most reads are one segment; a loaded machine wakes it late, and a
	// read then holds several (seen: 6 reads for 21 segments at a load
	// average of 14), so that is not asserted.
	if slices.Max(sizes) != o.MSS || !o.readsOfSegments || o.oneSegmentReads == 0 {
		t.Errorf("segments of at most %d (MSS %d); reads %v of whole segments %v: %v, %d of one segment",
			slices.Max(sizes), o.MSS, o.Link.Sizes, sizes, o.readsOfSegments, o.oneSegmentReads)
	}
	checkWireFiles(t, o.wire)
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// checkWireFiles checks a lesson's capture files: the pcap holds every
// frame captured, as gopacket and tcpdump (where installed) read it, and
// the graph drew every data segment of the trace.
func checkWireFiles(t *testing.T, w *wireSeen) {
	t.Helper()
	if w == nil || w.PcapPath == "" {
		t.Fatal("no capture written")
	}
	back, err := capture.ReadPcap(w.PcapPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Frames) != len(w.Record.Frames) {
		t.Errorf("%s holds %d frames, the capture %d", w.PcapPath, len(back.Frames), len(w.Record.Frames))
	}
	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		out, err := exec.Command(tcpdump, "-nn", "-r", w.PcapPath).Output()
		if n := strings.Count(string(out), "\n"); err != nil || n != len(w.Record.Frames) {
			t.Errorf("tcpdump -r %s: %d lines for %d frames, %v", w.PcapPath, n, len(w.Record.Frames), err)
		}
	}
	if w.Trace == nil {
		return
	}
	if fi, err := os.Stat(w.PlotPath); err != nil || fi.Size() == 0 {
		t.Fatalf("graph %q: %v", w.PlotPath, err)
	}
	if len(w.Drawn) == 0 || w.Drawn[0].Segments != len(w.Trace.Data) || w.Drawn[0].Retransmissions != w.Trace.Retransmissions() {
		t.Errorf("the graph drew %+v; the capture has %d segments, %d sent again", w.Drawn, len(w.Trace.Data), w.Trace.Retransmissions())
	}
}

func TestLoss(t *testing.T) {
	o, out := run[*lossObservations](t, lessonLoss)
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
	// On the wire: segments sent again, at least as many as TCP_INFO
	// counted when tms finished writing (the capture goes on to the
	// close), and the last ACK covers every byte: the losses recovered.
	// TCP_INFO's count includes a SYN-ACK sent again; so does this one.
	tr := o.wire.Trace
	resent := tr.Retransmissions()
	seen := map[string]bool{}
	for _, m := range tr.Marks {
		if m.FromSender && strings.ContainsAny(m.Flags, "SF") {
			if seen[m.Flags] {
				resent++
			}
			seen[m.Flags] = true
		}
	}
	if tr.Bytes() != o.Expected || tr.Retransmissions() == 0 || int64(resent) < o.Retransmits {
		t.Errorf("captured %d bytes, %d data segments and %d in all sent again (TCP_INFO %d); want %d, some, at least TCP_INFO's",
			tr.Bytes(), tr.Retransmissions(), resent, o.Retransmits, o.Expected)
	}
	if last := tr.Acks[len(tr.Acks)-1]; last.Ack < o.Expected {
		t.Errorf("the last ACK covers %d of %d bytes", last.Ack, o.Expected)
	}
	if !strings.Contains(out, resentText(tr.Retransmissions())) {
		t.Errorf("the narration does not give the captured retransmissions:\n%s", out)
	}
	checkWireFiles(t, o.wire)
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
	for _, l := range []Lesson{lessonLink, lessonLoss} {
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

func TestMAC(t *testing.T) {
	o, out := run[*macObservations](t, lessonMAC)
	if o.Skipped != "" {
		checkSkippedInOneLine(t, out)
		t.Skip(o.Skipped)
	}
	broadcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	req, rep, syn := o.Request, o.Reply, o.FirstSYN
	// From the capture: A asked everyone for B's MAC, B answered A alone,
	// and only then did the SYN leave, addressed to B's card.
	if !bytes.Equal(req.SrcMAC, o.MACA) || !bytes.Equal(req.DstMAC, broadcast) || !bytes.Equal(req.ARP.SenderMAC, o.MACA) {
		t.Errorf("ARP request from %s to %s (sender %s); want from A's %s to everyone", req.SrcMAC, req.DstMAC, req.ARP.SenderMAC, o.MACA)
	}
	if !bytes.Equal(rep.SrcMAC, o.MACB) || !bytes.Equal(rep.DstMAC, o.MACA) || !bytes.Equal(rep.ARP.SenderMAC, o.MACB) {
		t.Errorf("ARP reply from %s to %s says %s; want B's %s to A", rep.SrcMAC, rep.DstMAC, rep.ARP.SenderMAC, o.MACB)
	}
	if !req.At.Before(rep.At) || rep.At.After(syn.At) || !bytes.Equal(syn.DstMAC, o.MACB) {
		t.Errorf("request at %v, reply at %v, SYN at %v to %s: want the exchange first, then the SYN to %s", req.At, rep.At, syn.At, syn.DstMAC, o.MACB)
	}
	if o.Framed < 10 || o.Misframed != 0 {
		t.Errorf("%d TCP frames, %d not addressed A to B or B to A by MAC", o.Framed, o.Misframed)
	}
	if len(o.Before) != 0 {
		t.Errorf("neighbour table before: %v, want empty", o.Before)
	}
	if len(o.After) != 1 || !bytes.Equal(o.After[0].MAC, o.MACB) || !o.After[0].Complete {
		t.Errorf("neighbour table after: %v, want B's address at %s", o.After, o.MACB)
	}
	checkWireFiles(t, o.wire)
}

func TestNames(t *testing.T) {
	o, out := run[*namesObservations](t, lessonNames)
	if o.Skipped != "" {
		checkSkippedInOneLine(t, out)
		t.Skip(o.Skipped)
	}
	if !slices.Contains(o.Addrs["lo"], netip.MustParsePrefix("127.0.0.1/8")) || !slices.Contains(o.Addrs["veth-a"], netip.MustParsePrefix("10.200.0.1/24")) {
		t.Errorf("addresses %v: want loopback's and the link's", o.Addrs)
	}
	// Loopback traffic never reached the link's capture.
	if o.LoopbackBytes == 0 || o.LoopbackFrames != 0 {
		t.Errorf("%d bytes over loopback, %d of its frames on the link", o.LoopbackBytes, o.LoopbackFrames)
	}
	// The program in the lab read the lab's /etc/hosts, with Go's resolver,
	// and its connection by name went to B's address (in the capture).
	for _, c := range []struct{ name, network, want string }{
		{"localhost", "ip4", "127.0.0.1"}, {"localhost", "ip6", "::1"}, {hostsName, "ip4", "10.200.0.2"},
	} {
		if got := o.Child.lookup(c.name, c.network); !slices.Equal(got, []string{c.want}) {
			t.Errorf("in the lab, %s over %s is %v, want %s", c.name, c.network, got, c.want)
		}
	}
	if !strings.HasPrefix(o.Child.Dialed, "10.200.0.2:") || !o.ByNameSYN {
		t.Errorf("the connection to %s reached %q (%s); SYN captured: %v", hostsName, o.Child.Dialed, o.Child.DialErr, o.ByNameSYN)
	}
	if !slices.ContainsFunc(o.ChildResolver, func(s string) bool { return strings.HasPrefix(s, "hostLookupOrder("+hostsName+") = files") }) {
		t.Errorf("the resolver's account %q does not say it read the files first", o.ChildResolver)
	}
	if _, err := exec.LookPath("getent"); err == nil && o.Getent != "10.200.0.2" {
		t.Errorf("getent in the lab: %q", o.Getent)
	}
	// The closed port: refused, and on the wire a RST answering the SYN.
	if !errors.Is(o.Refused, unix.ECONNREFUSED) {
		t.Errorf("connect to a closed port: %v", o.Refused)
	}
	syn, rst := o.RefusedSYN.TCP, o.RefusedRST.TCP
	if rst.Src != syn.Dst || rst.Dst != syn.Src || rst.Ack != syn.Seq+1 || !rst.ACK {
		t.Errorf("SYN %v -> %v seq %d answered by RST %v -> %v ack %d", syn.Src, syn.Dst, syn.Seq, rst.Src, rst.Dst, rst.Ack)
	}
	if !errors.Is(o.Unreachable, unix.ENETUNREACH) || o.UnreachableFrames != 0 {
		t.Errorf("connect to %s: %v, %d frames sent", unreachableAddr, o.Unreachable, o.UnreachableFrames)
	}
	if left, _ := filepath.Glob(fmt.Sprintf("/etc/netns/tcplab-%d-*", os.Getpid())); len(left) != 0 {
		t.Errorf("the lesson left %v", left)
	}
	checkWireFiles(t, o.wire)
}

func TestLibraries(t *testing.T) {
	o, _ := run[*librariesObservations](t, lessonLibraries)
	if len(o.Clients) != 3 {
		t.Fatalf("%d clients, want 3", len(o.Clients))
	}
	for _, c := range o.Clients {
		if !c.Exact || c.Received != o.Expected || c.Calls < 1 {
			t.Errorf("%s: %d of %d bytes, exact %v, %d calls", c.Name, c.Received, o.Expected, c.Exact, c.Calls)
		}
	}
	loop, copied, events := o.Clients[0], o.Clients[1], o.Clients[2]
	// What each hides: the loop's reads are ours; io.Copy is one call
	// that read more than once; the event loop's data came in callbacks.
	if loop.Calls != loop.Reads || loop.Calls < 2 {
		t.Errorf("read loop: %d calls, %d reads", loop.Calls, loop.Reads)
	}
	if copied.Calls != 1 || copied.Reads < 2 {
		t.Errorf("io.Copy: %d calls made %d reads; want 1 call, several reads", copied.Calls, copied.Reads)
	}
	if events.Calls < 1 {
		t.Errorf("nbio: %d callbacks", events.Calls)
	}
}

// The tutorial's numbered sections (its table of contents): every one is
// cited by a lesson, so "tcplab demo --list" answers each.
var tutorialSections = []string{"1.1", "1.2", "1.3", "1.4", "1.5", "2", "2.1", "2.2", "3.1", "3.2", "4", "5.1", "5.2", "5.3", "6", "6.1", "6.2", "7"}

func TestEveryTutorialSectionHasALesson(t *testing.T) {
	cited := map[string]bool{}
	for _, l := range Lessons() {
		for _, s := range strings.Split(l.Section, ",") {
			cited[strings.TrimSpace(s)] = true
		}
	}
	for _, s := range tutorialSections {
		if !cited[s] {
			t.Errorf("no lesson cites section %s", s)
		}
	}
}

// The nbio engine, as the lesson sets it up, delivers an answer that was
// all queued, with its FIN, before the connection joined the engine. With
// nbio's default of 3 reads a wake-up it delivered 192 KiB and closed.
func TestEventLoopKeepsAnAnswerQueuedWithItsFIN(t *testing.T) {
	const size = 256 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, server, err := tcpPair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Room for the whole answer in the client's queue before it is read.
	if err := client.SetReadBuffer(4 * size); err != nil {
		t.Fatal(err)
	}
	go func() {
		server.Write(make([]byte, size))
		server.Close()
	}()
	if err := waitQueued(ctx, client, size); err != nil {
		t.Fatal(err)
	}
	engine := tmcEngine()
	var mu sync.Mutex
	got := 0
	closed := make(chan struct{})
	engine.OnData(func(_ *nbio.Conn, data []byte) {
		mu.Lock()
		got += len(data)
		mu.Unlock()
	})
	engine.OnClose(func(*nbio.Conn, error) { close(closed) })
	if err := engine.Start(); err != nil {
		t.Fatal(err)
	}
	defer engine.Stop()
	if _, err := engine.AddConn(client); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("no close")
	}
	mu.Lock()
	defer mu.Unlock()
	if got != size {
		t.Errorf("the engine delivered %d of %d bytes before it closed", got, size)
	}
}

func TestReadsInSegments(t *testing.T) {
	cases := []struct {
		reads    []int32
		segments []int
		whole    bool
		single   int
	}{
		{[]int32{1448, 1448, 1040}, []int{1448, 1448, 1040}, true, 3},
		{[]int32{2896, 1040}, []int{1448, 1448, 1040}, true, 1},
		{[]int32{1000, 448, 2488}, []int{1448, 1448, 1040}, false, 0},
		{[]int32{1448}, []int{1448, 1448}, false, 1},
		{[]int32{3936}, []int{1448, 1448, 1040}, true, 0},
	}
	for _, c := range cases {
		whole, single := readsInSegments(c.reads, c.segments)
		if whole != c.whole || (whole && single != c.single) {
			t.Errorf("readsInSegments(%v, %v) = %v, %d; want %v, %d", c.reads, c.segments, whole, single, c.whole, c.single)
		}
	}
}
