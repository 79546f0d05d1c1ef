package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/tcplab/tcplab/internal/server"
)

// newLogger is the servers' log/slog logger on standard error, in text for
// people or JSON for daemons and log collectors.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, usagef("--log-format must be text or json, not %q", format)
}

// closeServerOutput flushes a server's standard output and error; if lines
// were dropped, it says so, last, on standard error (without waiting for
// it either).
func closeServerOutput(stdout, stderr *server.Output) {
	n := stdout.Close() + stderr.Dropped()
	if n > 0 {
		fmt.Fprintf(stderr, "tcplab: %d lines of output were dropped: standard output or error was not being read\n", n)
	}
	stderr.Close()
}
