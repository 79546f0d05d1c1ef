package main

import (
	"io"
	"log/slog"
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
