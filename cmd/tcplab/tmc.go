package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/internal/chunkplot"
	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/multicopy"
)

// tmcConfig is what tmc's flags and arguments say.
type tmcConfig struct {
	host, port, msg     string
	quiet, json, stream bool
	interval            time.Duration
	plot                string
	copies              int64
	opts                multicopy.FetchOptions
}

func runTMC(ctx context.Context, std stdio, args []string) error {
	var c tmcConfig
	fs := newFlagSet("tmc")
	fs.BoolVar(&c.quiet, "quiet", false, "print only the summary")
	fs.BoolVar(&c.json, "json", false, "print only the summary, as one JSON object, with \"ok\" and \"error\" (docs/json.md)")
	fs.BoolVar(&c.stream, "json-stream", false, "print JSON objects, one a line, as the answer arrives: \"start\", an \"interval\" each --interval, and \"end\" with the --json summary (as iperf3 --json-stream)")
	fs.DurationVar(&c.interval, "interval", time.Second, "with --json-stream: the time between two \"interval\" objects")
	fs.StringVar(&c.plot, "plot", "", "draw the chunk sizes and their histogram to `FILE` (.png or .svg)")
	fs.IntVar(&c.opts.ReadSize, "read-size", multicopy.ReadBufferSize, "the most one read may return, as tmc.py's recv(1000000); smaller (e.g. 262144) is faster for bulk, with chunks mostly of that size")
	fs.Int64Var(&c.copies, "copies", multicopy.DefaultCopies, "how many copies of STRING the answer must hold, as tms sends by default (tms.py always sends 10000); 0: any whole number")
	fs.DurationVar(&c.opts.IdleTimeout, "timeout", multicopy.DefaultIdleTimeout, "give up after this long without data (and for the connect); 0: wait for ever, as tmc.py does")
	pos, err := fs.parse(std, args, 3, 3)
	if err != nil {
		return err
	}
	c.host, c.port, c.msg = hostArg(pos[0]), pos[1], pos[2]
	if err := c.validate(fs); err != nil {
		return err
	}
	rep := &tmcReport{StringBytes: len(c.msg), CopiesExpected: c.copies, BytesExpected: c.expected()}
	if p, err := strconv.Atoi(c.port); err == nil {
		rep.Host, rep.Port = c.host, p
	}
	err = c.run(ctx, std, rep)
	if c.json || c.stream {
		if jerr := rep.print(ctx, std.out, c.stream, err); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// validate refuses what cannot work, before anything is dialled.
func (c *tmcConfig) validate(fs *flagSet) error {
	if err := checkHost(c.host); err != nil {
		return err
	}
	if err := checkDialPort(c.port); err != nil {
		return err
	}
	if err := fs.refuseZero("read-size"); err != nil {
		return err
	}
	if err := fs.configError(c.opts.Validate(), map[string]string{"ReadSize": "read-size"}); err != nil {
		return err
	}
	if c.opts.IdleTimeout == 0 {
		c.opts.IdleTimeout = -1 // --timeout 0: wait for ever, as tmc.py
	}
	switch {
	case c.copies < 0:
		return usagef("--copies must not be negative, not %d", c.copies)
	case c.json && c.stream:
		return usagef("--json and --json-stream: give one (--json-stream ends with the --json summary)")
	case fs.isSet("interval") && !c.stream:
		return usagef("--interval needs --json-stream")
	case c.interval <= 0:
		return usagef("--interval must be positive, not %s", c.interval)
	case c.msg == "":
		return usagef("STRING must not be empty: the server would wait for it")
	}
	if i := strings.IndexByte(c.msg, '\n'); i >= 0 && i < len(c.msg)-1 {
		return usagef("STRING has a newline before its end, where tms would end it: send %s alone, or no newline", strconv.Quote(c.msg[:i+1]))
	}
	if c.plot != "" {
		if err := chunkplot.CheckPath(c.plot); err != nil {
			return usageError{err.Error()}
		}
	}
	return nil
}

// expected is the size of a right answer in bytes, 0 if unknown (--copies
// 0, or more than an int64 counts).
func (c *tmcConfig) expected() int64 {
	if c.copies == 0 || c.copies > math.MaxInt64/int64(len(c.msg)) {
		return 0
	}
	return c.copies * int64(len(c.msg))
}

// perRead reports whether tmc prints its per-read lines, as tmc.py does.
func (c *tmcConfig) perRead() bool { return !c.quiet && !c.json && !c.stream }

// run connects, sends, reads the answer and prints what tmc.py prints and
// the summary, filling rep (the JSON report) as it goes.
func (c *tmcConfig) run(ctx context.Context, std stdio, rep *tmcReport) error {
	conn, err := endpoint.Dial(ctx, c.host, c.port, max(c.opts.IdleTimeout, 0))
	if err != nil {
		return err
	}
	defer conn.Close()
	var received atomic.Int64
	if c.stream {
		// Stopped before run returns: the last interval comes before
		// the "end" object.
		defer streamIntervals(std.out, rep, &received, c.interval)()
	}
	res, err := c.fetch(ctx, conn, std, &received)
	if res != nil {
		rep.fill(res)
	}
	var refused *multicopy.RefusedError
	if err != nil && !errors.Is(err, multicopy.ErrWrongAnswer) && !errors.As(err, &refused) &&
		res != nil && res.Stats.Total() > 0 && ctx.Err() == nil && !c.json && !c.stream {
		// Say what did arrive before saying why it stopped.
		if perr := printSummary(std.out, res); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	if c.perRead() && res.Stats.Count()+1 < 5 {
		io.WriteString(std.out, "\n") // tmc.py prints the empty read at end of file among the first 4
	}
	if !c.json && !c.stream {
		if err := printSummary(std.out, res); err != nil {
			return err
		}
	}
	if c.plot != "" {
		if err := chunkplot.Write(c.plot, &res.Stats); err != nil {
			return err
		}
		fmt.Fprintf(std.err, "tcplab tmc: chunk plot written to %s\n", c.plot)
	}
	return nil
}

// fetch reads the answer: tmc.py's report of each read, the progress bar,
// and the check that the answer is whole copies of STRING, as many as
// expected, stopping at the first sign that it is not.
func (c *tmcConfig) fetch(ctx context.Context, conn net.Conn, std stdio, received *atomic.Int64) (*multicopy.Result, error) {
	out := terminalSafe(std.out)
	verify := multicopy.NewVerifier([]byte(c.msg)) // the answer must be whole copies of msg
	verify.ExpectCopies(c.copies)                  // and as many as the server sends
	fetchCtx, stopFetch := context.WithCancelCause(ctx)
	defer stopFetch(nil)
	reads := 0
	stopBar := func() {}
	if c.barAllowed(std.out) {
		stopBar = startProgress(std.err, received, c.expected())
	}
	res, err := multicopy.Fetch(fetchCtx, conn, []byte(c.msg), func(chunk []byte) {
		// A full server's refusal line never comes here: it is Fetch's error.
		received.Add(int64(len(chunk)))
		verify.Write(chunk)
		reads++
		if c.perRead() {
			if reads < 5 {
				out.Write(chunk)   // text from the network: escaped on a terminal
				flushTerminal(out) // a character cut by the read stays cut, as tmc.py's
				io.WriteString(std.out, "\n")
			}
			fmt.Fprintf(std.out, "received %d bytes\n", len(chunk))
		}
		if err := verify.Wrong(); err != nil {
			stopFetch(err) // reading on could take long
		}
	}, c.opts)
	stopBar()
	if wrong := verify.Wrong(); wrong != nil && ctx.Err() == nil {
		return res, wrongAnswer(wrong)
	}
	if err == nil {
		err = wrongAnswer(verify.Err()) // never a wrong answer reported as success
	}
	return res, err
}

// barAllowed reports whether the progress bar may be drawn on standard
// error: when tmc writes nothing to standard output during the transfer,
// or writes it to a file. tmc's own lines on the terminal, or on a pipe
// that may lead to the same terminal (tcplab tmc ... | tee log), would
// collide with the bar ("... [1s] received 1 bytes"): a pipe's far end
// cannot be known, so a pipe means no bar.
func (c *tmcConfig) barAllowed(stdout io.Writer) bool {
	if !c.perRead() && !c.stream {
		return true
	}
	f := fileOf(stdout)
	if f == nil || isTerminal(stdout) {
		return false
	}
	info, err := f.Stat()
	return err == nil && (info.Mode().IsRegular() || info.Mode()&os.ModeCharDevice != 0)
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
// the typist's. An answer in one read has no transfer to time.
func printSummary(w io.Writer, res *multicopy.Result) error {
	sum := summarize(res)
	chunks := "chunks"
	if sum.Chunks == 1 {
		chunks = "chunk"
	}
	timing := "in one read: no rate to measure"
	if sum.BytesPerSecond != nil {
		timing = fmt.Sprintf("in %s, %s", res.Transfer.Round(time.Microsecond), rateText(*sum.BytesPerSecond))
	}
	_, err := fmt.Fprintf(w, "summary: %d bytes in %d %s (smallest %d, median %d, largest %d) %s; first byte after %s\n",
		sum.Bytes, sum.Chunks, chunks, sum.MinChunk, sum.MedianChunk, sum.MaxChunk, timing, res.Wait.Round(time.Microsecond))
	return err
}

// rateText formats bytes per second with a decimal unit, as network tools
// do.
func rateText(bps float64) string {
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
