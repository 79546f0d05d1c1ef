package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/chunkplot"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/multicopy"
	"github.com/tcplab/tcplab/stream"
)

// lessonChunks runs the tutorial's first pair, tms and tmc (package multicopy),
// several times over and shows the same bytes arriving in different
// chunkings from run to run and for different sizes, with a picture of the
// chunk sizes.
var lessonChunks = Lesson{
	Name:        "chunks",
	Title:       "one byte stream, arriving in chunks nobody chose",
	Section:     "1.4, 2, 2.2",
	WritesFiles: true,
	Run:         runChunks,
}

// chunkRun is one tmc run as the chunks lesson saw it.
type chunkRun struct {
	Message string
	Copies  int64
	// Expected is len(Message) * Copies, what the server sent.
	Expected int64
	// Stats are the client's reads.
	Stats stream.ChunkStats
}

// chunksObservations is what the chunks lesson measured.
type chunksObservations struct {
	Runs []chunkRun
	// Chunkings counts the distinct chunkings (sequences of read sizes)
	// among the runs of the largest transfer, which were all sent alike.
	Chunkings int
	// PlotPath is the chunk picture of the last run, empty when
	// Options.OutDir is.
	PlotPath string
}

// Summary implements Observations.
func (o *chunksObservations) Summary() string {
	var parts []string
	for _, r := range o.Runs {
		parts = append(parts, fmt.Sprintf("%s in %s", byteCount(r.Stats.Total()), count(r.Stats.Count(), "read")))
	}
	s := strings.Join(parts, ", ")
	if o.PlotPath != "" {
		s += "; plot " + o.PlotPath
	}
	return s
}

// chunkRuns are the transfers the lesson makes, each of the server's
// 10,000 copies: the tutorial's own ("abc") twice, then a 1000-byte string
// three times (10 MB), large enough to be cut up even on loopback.
var chunkRuns = []struct {
	msg   string
	times int
}{
	{"abc", 2},
	{strings.Repeat("0123456789", 100), 3},
}

func runChunks(ctx context.Context, w io.Writer, opts Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &chunksObservations{}

	p.tutorial("everything one side sends is one message; it arrives in pieces of sizes nobody chose, so")
	p.tutorial("the client loops on recv() until the server closes (sections 1.4, 2.2).")
	addr, stop, err := startMulticopy(ctx, &multicopy.Server{})
	if err != nil {
		return nil, err
	}
	defer stop()

	for _, run := range chunkRuns {
		p.do("tmc sends %s to tms on %s, which sends it back %d times and closes; %d runs.",
			describeMsg(run.msg), addr, multicopy.DefaultCopies, run.times)
		for range run.times {
			r, err := fetchCopies(ctx, addr, run.msg, multicopy.DefaultCopies)
			if err != nil {
				return nil, err
			}
			obs.Runs = append(obs.Runs, r)
			s := &r.Stats
			p.saw("%s in %s: smallest %d, median %d, largest %d; first reads %s",
				byteCount(s.Total()), count(s.Count(), "read"), s.Min(), s.Median(), s.Max(), firstSizes(s.Sizes, 5))
		}
		if r := obs.Runs[len(obs.Runs)-1]; r.Stats.Count() == 1 {
			p.saw("on loopback %s can arrive whole: the kernel had it all before the first read.", byteCount(r.Expected))
		}
	}

	last := chunkRuns[len(chunkRuns)-1]
	obs.Chunkings = distinctChunkings(obs.Runs[len(obs.Runs)-last.times:])
	p.saw("the %d runs of %s, sent alike, arrived in %s.",
		last.times, byteCount(obs.Runs[len(obs.Runs)-1].Expected), count(obs.Chunkings, "different chunking"))

	if opts.OutDir != "" {
		obs.PlotPath = filepath.Join(opts.OutDir, "chunks.png")
		if err := chunkplot.Write(obs.PlotPath, &obs.Runs[len(obs.Runs)-1].Stats); err != nil {
			return nil, err
		}
		p.saw("the chunk sizes of the last run are drawn in %s.", obs.PlotPath)
	} else {
		p.note("tcplab demo --out DIR also draws the chunk sizes of the last run in DIR/chunks.png.")
	}
	p.note("Read, like recv(), returns what the kernel holds, up to the buffer; io.EOF is the close.")
	p.note("Try it yourself: tcplab tms 2000, then tcplab tmc localhost 2000 abc --plot chunks.png.")
	return obs, p.err()
}

// startMulticopy serves srv on a loopback port with internal/server and
// returns its address and a function that stops it.
func startMulticopy(ctx context.Context, srv *multicopy.Server) (addr string, stop func(), err error) {
	ln, err := listenLoopback(ctx)
	if err != nil {
		return "", nil, err
	}
	s := &server.Server{Handler: srv}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	return ln.Addr().String(), func() {
		s.Close()
		<-served
	}, nil
}

// fetchCopies runs one tmc transfer against addr.
func fetchCopies(ctx context.Context, addr, msg string, copies int64) (chunkRun, error) {
	r := chunkRun{Message: msg, Copies: copies, Expected: int64(len(msg)) * copies}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return r, fmt.Errorf("tmc: %w", err)
	}
	defer conn.Close()
	res, err := multicopy.Fetch(ctx, conn, []byte(msg), nil, multicopy.FetchOptions{IdleTimeout: 5 * time.Second})
	if err != nil {
		return r, fmt.Errorf("tmc: %w", err)
	}
	r.Stats = res.Stats
	if r.Stats.Total() != r.Expected {
		return r, fmt.Errorf("tmc: received %d bytes, want %d", r.Stats.Total(), r.Expected)
	}
	return r, nil
}

// distinctChunkings counts the different sequences of read sizes.
func distinctChunkings(runs []chunkRun) int {
	var seen [][]int32
	for _, r := range runs {
		if !slices.ContainsFunc(seen, func(s []int32) bool { return slices.Equal(s, r.Stats.Sizes) }) {
			seen = append(seen, r.Stats.Sizes)
		}
	}
	return len(seen)
}

// firstSizes prints the first n sizes, and "..." if there are more.
func firstSizes(sizes []int32, n int) string {
	s := joinInts(sizes[:min(n, len(sizes))])
	if len(sizes) > n {
		s += ", ..."
	}
	return s
}

// describeMsg names a message briefly: quoted when short, by size if not.
func describeMsg(msg string) string {
	if len(msg) <= 10 {
		return fmt.Sprintf("%q", msg)
	}
	return fmt.Sprintf("a %d-byte string", len(msg))
}
