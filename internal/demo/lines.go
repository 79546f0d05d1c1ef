package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/stream"
)

// lessonLines shows line framing over a byte stream: reads return chunks that
// cut lines anywhere, and a buffered reader (Python's makefile(), Go's
// bufio.Reader) pieces the lines back together.
var lessonLines = Lesson{
	Name:    "lines",
	Title:   "lines are yours to find: bufio is makefile()",
	Section: "5.1, 5.2",
	Run:     runLines,
}

// linesObservations is what the lines lesson measured.
type linesObservations struct {
	// Writes are the sender's writes, in order.
	Writes []string
	// Reads are the bytes each Read on the socket returned, in order.
	Reads []string
	// Lines are the lines bufio made of them.
	Lines []string
	// Split is a line that arrived in two reads (empty if none did).
	Split string
}

// Summary implements Observations.
func (o *linesObservations) Summary() string {
	return fmt.Sprintf("%d writes arrived as %d reads; bufio gave %d lines, %q pieced from two reads",
		len(o.Writes), len(o.Reads), len(o.Lines), o.Split)
}

// linesWrites is the tutorial's readlines() example (section 5.2) sent in
// two writes that cut the line "and" in two.
var linesWrites = []string{"moon, sun\nan", "d\nstars\n"}

// maxLine bounds each line, as every tcplab line reader is bounded.
const maxLine = 1024

func runLines(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &linesObservations{Writes: linesWrites}

	p.tutorial("TCP ignores line ends; one recv() may hold a line and part of the next, which you must keep")
	p.tutorial("for the next recv(). makefile() does that for you (sections 5.1, 5.2).")
	client, server, err := tcpPair(ctx)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	defer server.Close()
	stop := context.AfterFunc(ctx, func() { server.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	rec := &recordingReader{r: server, firstRead: make(chan struct{})}
	sent := make(chan error, 1)
	go func() {
		// The second write waits for the first read, so the line "and"
		// is sure to be cut in two on the wire and in the reads.
		if _, err := client.Write([]byte(linesWrites[0])); err != nil {
			sent <- err
			return
		}
		select {
		case <-rec.firstRead:
		case <-time.After(5 * time.Second):
			sent <- errors.New("the reader never read")
			return
		}
		_, err := client.Write([]byte(linesWrites[1]))
		client.CloseWrite()
		sent <- err
	}()
	p.do("send %q, wait until the reader has read, then send %q; read lines with bufio.", linesWrites[0], linesWrites[1])

	br := bufio.NewReader(rec)
	for {
		line, err := stream.ReadLine(br, maxLine)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			<-sent
			return nil, fmt.Errorf("read line: %w", err)
		}
		obs.Lines = append(obs.Lines, string(line))
	}
	if err := <-sent; err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	obs.Reads = rec.reads()
	if split := straddling(obs.Reads); len(split) > 0 {
		obs.Split = split[0]
	}
	for i, r := range obs.Reads {
		p.saw("read %d returned %q", i+1, r)
	}
	p.saw("bufio gave the lines %q; %q was pieced together from two reads.", obs.Lines, obs.Split)
	p.note("bufio.Reader keeps the leftover bytes between reads; tcplab's stream.ReadLine adds a bound on")
	p.note("the line length, so a peer that never sends a newline cannot make the reader grow without limit.")
	return obs, p.err()
}

// recordingReader keeps a copy of every chunk its reader returns.
type recordingReader struct {
	r         io.Reader
	mu        sync.Mutex
	chunks    []string
	firstRead chan struct{}
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if n > 0 {
		rr.mu.Lock()
		rr.chunks = append(rr.chunks, string(p[:n]))
		if len(rr.chunks) == 1 {
			close(rr.firstRead)
		}
		rr.mu.Unlock()
	}
	return n, err
}

func (rr *recordingReader) reads() []string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]string(nil), rr.chunks...)
}

// straddling returns the lines (without their newline) that begin in one
// read and end in a later one.
func straddling(reads []string) []string {
	var out []string
	var partial strings.Builder
	for _, r := range reads {
		started := partial.Len() > 0
		for {
			i := strings.IndexByte(r, '\n')
			if i < 0 {
				partial.WriteString(r)
				break
			}
			if started {
				partial.WriteString(r[:i])
				out = append(out, partial.String())
			}
			partial.Reset()
			started = false
			r = r[i+1:]
		}
	}
	return out
}
