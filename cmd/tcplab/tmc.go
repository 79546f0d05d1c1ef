package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/internal/chunkplot"
	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/multicopy"
)

func runTMC(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("tmc")
	quiet := fs.Bool("quiet", false, "print only the summary")
	asJSON := fs.Bool("json", false, "print only the summary, as one JSON object")
	plotPath := fs.String("plot", "", "draw the chunk sizes and their histogram to `FILE` (.png or .svg)")
	readSize := fs.Int("read-size", multicopy.ReadBufferSize, "the most one read may return, as tmc.py's recv(1000000); smaller (e.g. 262144) is faster for bulk, with chunks mostly of that size")
	copies := fs.Int64("copies", multicopy.DefaultCopies, "how many copies of STRING the answer must hold, as tms sends by default (tms.py always sends 10,000); 0: any whole number")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long without data (and for the connect); 0: wait for ever, as tmc.py does")
	pos, err := fs.parse(std, args, 3, 3)
	if err != nil {
		return err
	}
	host, portArg, msg := hostArg(pos[0]), pos[1], pos[2]
	if err := checkHost(host); err != nil {
		return err
	}
	if err := checkDialPort(portArg); err != nil {
		return err
	}
	if *readSize < 1 || *readSize > 64<<20 {
		return usagef("--read-size must be from 1 to %d bytes, not %d", 64<<20, *readSize)
	}
	if *copies < 0 {
		return usagef("--copies must not be negative, not %d", *copies)
	}
	if msg == "" {
		return usagef("STRING must not be empty: the server would wait for it")
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 && i < len(msg)-1 {
		return usagef("STRING has a newline before its end, where tms would end it: send %s alone, or no newline", strconv.Quote(msg[:i+1]))
	}
	if *plotPath != "" {
		if err := chunkplot.CheckPath(*plotPath); err != nil {
			return usageError{err.Error()}
		}
	}
	conn, err := endpoint.Dial(ctx, host, portArg, *timeout)
	if err != nil {
		return err
	}
	defer conn.Close()

	// The faithful report: tmc.py prints the data of reads 1 to 4 (including
	// the empty read at end of file, if it is among them) and the size of
	// every non-empty read.
	reads := 0
	out := terminalSafe(std.out)
	var received atomic.Int64
	verify := multicopy.NewVerifier([]byte(msg)) // the answer must be whole copies of msg
	verify.ExpectCopies(*copies)                 // and as many as the server sends
	// Stop at the first sign of a wrong answer (a byte that differs, more
	// bytes than the copies expected): reading on could take long.
	fetchCtx, stopFetch := context.WithCancelCause(ctx)
	defer stopFetch(nil)
	show := func(chunk []byte) {
		verify.Write(chunk)
		reads++
		if !*quiet && !*asJSON {
			if reads < 5 {
				out.Write(chunk)   // text from the network: escaped on a terminal
				flushTerminal(out) // a character cut by the read stays cut, as tmc.py's
				io.WriteString(std.out, "\n")
			}
			fmt.Fprintf(std.out, "received %d bytes\n", len(chunk))
		}
		if err := verify.Wrong(); err != nil {
			stopFetch(err)
		}
	}
	// tmc's per-read lines on a terminal are the progress already; a bar
	// drawn between them would glue itself to each line.
	stopBar := func() {}
	if *quiet || *asJSON || !isTerminal(std.out) {
		stopBar = startProgress(std.err, &received)
	}
	res, err := multicopy.Fetch(fetchCtx, conn, []byte(msg), *timeout, *readSize, func(chunk []byte) {
		received.Add(int64(len(chunk)))
		show(chunk) // a full server's refusal line never comes here: it is Fetch's error
	})
	stopBar()
	if wrong := verify.Wrong(); wrong != nil && ctx.Err() == nil {
		return wrongAnswer(wrong)
	}
	var refused *multicopy.RefusedError
	if err != nil {
		// Say what did arrive before saying why it stopped; nothing
		// arrived (or a refusal) is said by the error line alone.
		if res != nil && res.Stats.Total() > 0 && ctx.Err() == nil && !errors.As(err, &refused) {
			if perr := printSummary(std, res, *asJSON); perr != nil {
				return perr
			}
		}
		return err
	}
	if err := verify.Err(); err != nil {
		return wrongAnswer(err) // never a wrong answer reported as success
	}
	if !*quiet && !*asJSON && reads+1 < 5 {
		io.WriteString(std.out, "\n")
	}
	if err := printSummary(std, res, *asJSON); err != nil {
		return err
	}
	if *plotPath != "" {
		if err := chunkplot.Write(*plotPath, &res.Stats); err != nil {
			return err
		}
		fmt.Fprintf(std.err, "tmc: chunk plot written to %s\n", *plotPath)
	}
	return nil
}

// wrongAnswer adds to the verifier's verdict the likely cause, where
// there is one: an answer longer than --copies copies comes from a server
// told to send more (tms --copies N).
func wrongAnswer(err error) error {
	if errors.Is(err, multicopy.ErrMoreCopies) {
		return fmt.Errorf("%w: the server sends more copies: give tmc its count with --copies N (0: any number)", err)
	}
	return err
}

// printSummary prints tmc's closing summary: the transfer's time runs from
// the first byte back to the end of file, and the wait for that first byte
// (tms's go-ahead) is given apart, so the throughput is the network's, not
// the typist's.
func printSummary(std stdio, res *multicopy.Result, asJSON bool) error {
	sum := summarize(res)
	if asJSON {
		enc := json.NewEncoder(std.out)
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		chunks := "chunks"
		if sum.Chunks == 1 {
			chunks = "chunk"
		}
		_, err := fmt.Fprintf(std.out, "summary: %d bytes in %d %s (smallest %d, median %d, largest %d) in %s, %s; first byte after %s\n",
			sum.Bytes, sum.Chunks, chunks, sum.MinChunk, sum.MedianChunk, sum.MaxChunk,
			res.Transfer.Round(time.Microsecond), rate(sum.BytesPerSecond), res.Wait.Round(time.Microsecond))
		return err
	}
	return nil
}

// transferSummary is tmc's closing summary; its JSON form is stable for
// scripts.
type transferSummary struct {
	Bytes          int64   `json:"bytes"`
	Chunks         int64   `json:"chunks"`
	MinChunk       int     `json:"min_chunk"`
	MedianChunk    int     `json:"median_chunk"`
	MaxChunk       int     `json:"max_chunk"`
	Seconds        float64 `json:"seconds"`          // first byte to end of file
	BytesPerSecond float64 `json:"bytes_per_second"` // Bytes / Seconds
	WaitSeconds    float64 `json:"wait_seconds"`     // message sent to first byte
}

func summarize(res *multicopy.Result) transferSummary {
	s := transferSummary{
		Bytes:       res.Stats.Total(),
		Chunks:      res.Stats.Count(),
		MinChunk:    res.Stats.Min(),
		MedianChunk: res.Stats.Median(),
		MaxChunk:    res.Stats.Max(),
		Seconds:     res.Transfer.Seconds(),
		WaitSeconds: res.Wait.Seconds(),
	}
	if s.Seconds > 0 {
		s.BytesPerSecond = float64(s.Bytes) / s.Seconds
	}
	return s
}

// rate formats bytes per second with a decimal unit, as network tools do.
func rate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f GB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f MB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f B/s", bps)
}
