package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/tcplab/tcplab/internal/server"
)

// newLogger is the servers' log/slog logger on standard error, in text for
// people or JSON for daemons and log collectors, under the log limit
// (server.LimitHandler): a flood of clients or refusals costs each kind
// of record at most 10 lines in 10 s and then one line with the count.
// The counts still open are written when w, a server's Output, closes.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	var h slog.Handler
	switch format {
	case "text", "":
		h = slog.NewTextHandler(w, nil)
	case "json":
		h = slog.NewJSONHandler(w, nil)
	default:
		return nil, usagef("--log-format must be text or json, not %q", format)
	}
	lh := server.NewLimitHandler(h, server.LogLimit{})
	if o, ok := w.(*server.Output); ok {
		o.OnClose(lh.Flush)
	}
	return slog.New(lh), nil
}

// limitedLines is w for lines of one kind (svr's "client is at ADDR" on
// standard output) under log's limit (see newLogger); the counts still
// open are written when out, the Output beneath w, closes.
func limitedLines(log *slog.Logger, w io.Writer, kind string, out *server.Output) io.Writer {
	lh, ok := log.Handler().(*server.LimitHandler)
	if !ok {
		return w
	}
	out.OnClose(lh.Flush)
	return lh.Lines(w, kind)
}

// flushLogs writes the counts of the log limit's open intervals now
// (server.LimitHandler.Flush), as a server stops.
func flushLogs(log *slog.Logger) {
	if lh, ok := log.Handler().(*server.LimitHandler); ok {
		lh.Flush()
	}
}

// closeServerOutput flushes a server's standard output and error; if lines
// were dropped, it says so, last, on standard error (without waiting for
// it either). stdout is nil for a server that writes its standard output
// directly (strsvr: v, whole, at exit).
func closeServerOutput(stdout, stderr *server.Output) {
	var n int64
	which := "standard error"
	if stdout != nil {
		n, which = stdout.Close(), "standard output or error"
	}
	n += stderr.Dropped()
	if n > 0 {
		fmt.Fprintf(stderr, "tcplab: %d lines of output were dropped: %s was not being read\n", n, which)
	}
	stderr.Close()
}
