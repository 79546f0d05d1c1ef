package stream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadChunksSeesEveryByteInOrder(t *testing.T) {
	// OneByteReader makes the worst chunking possible: one byte per read.
	src := strings.Repeat("abc", 1000)
	var got bytes.Buffer
	var stats ChunkStats
	n, err := ReadChunks(iotest.OneByteReader(strings.NewReader(src)), make([]byte, 64), func(c []byte) error {
		got.Write(c)
		stats.Add(len(c), time.Now())
		return nil
	})
	if err != nil || n != int64(len(src)) || got.String() != src {
		t.Fatalf("ReadChunks = %d, %v; data equal %v", n, err, got.String() == src)
	}
	if stats.Count() != 3000 || stats.Min() != 1 || stats.Max() != 1 || stats.Median() != 1 {
		t.Fatalf("stats = %d chunks, min %d max %d median %d", stats.Count(), stats.Min(), stats.Max(), stats.Median())
	}
}

func TestReadChunksReturnsCallbackAndReaderErrors(t *testing.T) {
	stop := errors.New("stop")
	_, err := ReadChunks(strings.NewReader("xyz"), make([]byte, 1), func([]byte) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("callback error lost: %v", err)
	}
	boom := errors.New("boom")
	n, err := ReadChunks(iotest.TimeoutReader(strings.NewReader("xyz")), make([]byte, 8), func([]byte) error { return nil })
	if err == nil || n != 3 {
		t.Fatalf("reader error: n=%d err=%v", n, err)
	}
	_, err = ReadChunks(iotest.ErrReader(boom), make([]byte, 8), func([]byte) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if _, err := ReadChunks(strings.NewReader("x"), nil, nil); err == nil {
		t.Fatal("empty buffer accepted")
	}
}

func TestChunkStatsMedian(t *testing.T) {
	cases := []struct {
		sizes  []int
		median int
	}{
		{nil, 0},
		{[]int{5}, 5},
		{[]int{1, 9}, 5},
		{[]int{3, 17}, 10}, // was 3, the lower middle
		{[]int{9, 1, 5}, 5},
		{[]int{7, 7, 7, 1, 100}, 7},
		{[]int{65483, 32768, 1, 65483}, 49126}, // 49125.5, rounded half up
		{[]int{2, 2, 5, 5}, 4},                 // 3.5
	}
	for _, c := range cases {
		var s ChunkStats
		for _, n := range c.sizes {
			s.Add(n, time.Now())
		}
		if got := s.Median(); got != c.median {
			t.Errorf("Median(%v) = %d, want %d", c.sizes, got, c.median)
		}
	}
}

// Median, kept as counts per size, agrees with sorting every chunk, on
// random sizes (the seed is printed on failure).
func TestChunkStatsMedianMatchesSorting(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		n := 1 + r.IntN(50)
		sizes := make([]int, n)
		var s ChunkStats
		for i := range sizes {
			sizes[i] = 1 + r.IntN(1+r.IntN(70000))
			s.Add(sizes[i], time.Now())
		}
		slices.Sort(sizes)
		want := sizes[n/2]
		if n%2 == 0 {
			want = (sizes[n/2-1] + sizes[n/2] + 1) / 2
		}
		if got := s.Median(); got != want {
			t.Fatalf("seed %d: Median(%v) = %d, want %d", seed, sizes, got, want)
		}
	}
}

func TestWriteRepeatedStreamsExactCopies(t *testing.T) {
	for _, c := range []struct {
		msg    string
		copies int
	}{{"a", 1001}, {"abc", 100_003}, {strings.Repeat("x", RepeatBlockSize+7), 3}} {
		msg := c.msg
		var buf bytes.Buffer
		n, err := WriteRepeated(&buf, []byte(msg), int64(c.copies), 0)
		want := strings.Repeat(msg, c.copies)
		if err != nil || n != int64(len(want)) || buf.String() != want {
			t.Fatalf("len(msg)=%d: n=%d err=%v equal=%v", len(msg), n, err, buf.String() == want)
		}
	}
	if n, err := WriteRepeated(io.Discard, nil, 10, 0); n != 0 || err != nil {
		t.Fatalf("empty message: %d %v", n, err)
	}
}

// Over TCP the copies go out as vectored writes of several blocks each,
// with the progress deadline on; the reader must still see every copy, in
// order, and nothing else.
func TestWriteRepeatedOverTCP(t *testing.T) {
	a, b := tcpPair(t)
	defer b.Close()
	msg := []byte("0123456789abcdefghi\n") // 20 bytes: blocks of 13,107 copies
	const copies = 250_000                 // 5 MB: several writes of several blocks
	done := make(chan error, 1)
	go func() {
		_, err := WriteRepeated(a, msg, copies, 5*time.Second)
		a.Close()
		done <- err
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat(msg, copies)) {
		t.Fatalf("received %d bytes, not %d copies of %q", len(got), copies, msg)
	}
}

// WriteRepeated must not allocate copies × len(msg): a gigabyte of copies of
// a one-byte message costs one block.
func TestWriteRepeatedMemoryIsPerMessageNotPerCopy(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	WriteRepeated(io.Discard, []byte("z"), 1<<30, 0)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > RepeatBlockSize+4<<10 {
		t.Fatalf("%d bytes allocated for 1 GiB of copies", n)
	}
}

// A message as large as the block is written as it is: a server holding a
// client's 1 MB message must not hold a second megabyte to repeat it.
func TestWriteRepeatedLargeMessageIsNotCopied(t *testing.T) {
	msg := bytes.Repeat([]byte("m"), 1_000_000)
	if n := leastAllocated(func() { WriteRepeated(io.Discard, msg, 5, 0) }); n > 4<<10 {
		t.Fatalf("%d bytes allocated to repeat a 1 MB message", n)
	}
}

// A few copies of a short message (tms --copies 1) cost a few bytes, not a
// vector sized for a 1 MiB write of them: before, one copy of "z" allocated
// a vector of 1,048,576 entries (24 MiB), and tms --keep answering its 1000
// clients at once was killed for lack of memory.
func TestWriteRepeatedFewCopiesCostLittle(t *testing.T) {
	for _, tc := range []struct {
		msg    string
		copies int64
	}{{"z", 1}, {"z", 3}, {"hello\n", 2}} {
		if n := leastAllocated(func() { WriteRepeated(io.Discard, []byte(tc.msg), tc.copies, 0) }); n > 4<<10 {
			t.Errorf("%d bytes allocated for %d copies of %q", n, tc.copies, tc.msg)
		}
	}
}

// leastAllocated is the fewest bytes the process allocated while f ran,
// over a few runs. The count is the whole process's: a goroutine of
// another test (or of an earlier run under -count) allocating at the same
// moment adds to it (5,640 bytes for one copy of "z" in 1 of 20 runs),
// never takes from it, so the least of a few runs is f's own.
func leastAllocated(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

func TestWriteAllDropsAReaderThatStops(t *testing.T) {
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	// b never reads: once the kernel buffers fill, no progress is possible.
	start := time.Now()
	n, err := WriteAll(a, make([]byte, 64<<20), 200*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v after %d bytes, want a deadline error", err, n)
	}
	// The documented bound is a few times idle (see WriteAll); 10 s is far
	// above it and well below a hung test.
	if n == 0 || time.Since(start) > 10*time.Second {
		t.Fatalf("wrote %d bytes in %v", n, time.Since(start))
	}
}

// A reader that keeps reading, each read well within the idle window,
// lets WriteAll finish a write that takes many windows. In a synctest
// bubble over net.Pipe, so that the reader's pace and the windows are on
// one clock: on a real connection, a loaded machine that did not run the
// reader for 500 ms failed the test (1 run in 50 with -race, next to a
// nemesis bench).
func TestWriteAllLetsASlowReaderFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		const size = 8 << 20
		const idle = 500 * time.Millisecond
		done := make(chan int64)
		go func() {
			var got int64
			buf := make([]byte, 256<<10)
			for got < size {
				n, err := b.Read(buf)
				got += int64(n)
				if err != nil {
					break
				}
				time.Sleep(idle / 5) // the pace is the point: a slow reader
			}
			done <- got
		}()
		start := time.Now()
		n, err := WriteAll(a, make([]byte, size), idle)
		if err != nil || n != size {
			t.Fatalf("WriteAll = %d, %v", n, err)
		}
		if got := <-done; got != size {
			t.Fatalf("reader got %d", got)
		}
		// 32 reads a fifth of idle apart: the write took several windows.
		if took := time.Since(start); took < 3*idle {
			t.Fatalf("the write took %v, not the several windows a slow reader needs", took)
		}
	})
}

func TestReadLine(t *testing.T) {
	cases := []struct {
		in    string
		lines []string
		err   error
	}{
		{"one\ntwo\r\nthree", []string{"one", "two", "three"}, io.EOF},
		{"\n\n", []string{"", ""}, io.EOF},
		{strings.Repeat("x", 10) + "\n", []string{strings.Repeat("x", 10)}, io.EOF},
		{strings.Repeat("x", 11) + "\n", nil, ErrLineTooLong},
		{strings.Repeat("x", 11), nil, ErrLineTooLong},
		{strings.Repeat("y", 5000) + "\n", nil, ErrLineTooLong},
	}
	for _, c := range cases {
		// A 16-byte buffer forces lines to be pieced together across reads.
		br := bufio.NewReaderSize(iotest.HalfReader(strings.NewReader(c.in)), 16)
		var got []string
		var err error
		for {
			var line []byte
			line, err = ReadLine(br, 10)
			if err != nil {
				break
			}
			got = append(got, string(line))
		}
		if !errors.Is(err, c.err) || strings.Join(got, "|") != strings.Join(c.lines, "|") {
			t.Errorf("ReadLine(%.20q) = %q, %v; want %q, %v", c.in, got, err, c.lines, c.err)
		}
	}
}

func TestCloseWriteSendsEOFButKeepsReading(t *testing.T) {
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	a.Write([]byte("done"))
	if err := CloseWrite(a); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "done" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	b.Write([]byte("answer"))
	b.Close()
	got, _ = io.ReadAll(a)
	if string(got) != "answer" {
		t.Fatalf("half-closed side read %q", got)
	}
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return a, <-accepted
}
