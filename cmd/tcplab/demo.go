package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tcplab/tcplab/demo"
)

// errInterrupted ends a tour stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

func runDemo(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("demo")
	list := fs.Bool("list", false, "list the lessons and exit")
	outDir := fs.String("out", "", "write files such as the chunk plot to `DIR` (default: a new temporary directory, printed)")
	names, err := fs.parse(std, args, 0, -1)
	if err != nil {
		return err
	}
	if *list {
		tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
		for _, l := range demo.Lessons() {
			fmt.Fprintf(tw, "%s\t%s\t(tutorial %s)\n", l.Name, l.Title, l.Section)
		}
		return tw.Flush()
	}

	// A tour whose output goes nowhere (a full disk) stops at the first
	// failed write and says so: before, every lesson failed to print and
	// the tour reported "11 of 11 lessons failed".
	out := &stickyWriter{w: std.out}
	std.out = out

	lessons := demo.Lessons()
	if len(names) > 0 {
		lessons = nil
		for _, name := range names {
			l, ok := demo.Lookup(name)
			if !ok {
				return usagef("unknown lesson %q; the lessons are %s", name, strings.Join(demo.Names(), ", "))
			}
			lessons = append(lessons, l)
		}
	}

	opts := demo.Options{OutDir: *outDir}
	for _, l := range lessons {
		if !l.WritesFiles {
			continue
		}
		if opts.OutDir == "" {
			if opts.OutDir, err = os.MkdirTemp("", "tcplab-demo-"); err != nil {
				return fmt.Errorf("output directory: %w", err)
			}
		} else if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
			return fmt.Errorf("output directory: %w", err)
		}
		fmt.Fprintf(std.out, "Files from this tour go to %s\n\n", opts.OutDir)
		break
	}

	start := time.Now()
	type outcome struct {
		name, summary string
		err           error
	}
	var outcomes []outcome
	var failed []string
	for _, l := range lessons {
		if ctx.Err() != nil {
			return errInterrupted
		}
		fmt.Fprintln(std.out, demo.Header(l))
		if err := out.failed(); err != nil {
			return err
		}
		began := time.Now()
		obs, err := l.Run(ctx, std.out, opts)
		if err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			if err := out.failed(); err != nil {
				return err
			}
			fmt.Fprintf(std.out, "  FAILED: %s\n\n", oneLine(err.Error()))
			failed = append(failed, l.Name)
			outcomes = append(outcomes, outcome{name: l.Name, err: err})
			continue
		}
		fmt.Fprintf(std.out, "  (%.1f s)\n\n", time.Since(began).Seconds())
		outcomes = append(outcomes, outcome{name: l.Name, summary: obs.Summary()})
	}
	if len(lessons) > 1 {
		fmt.Fprintf(std.out, "What this run showed (%.1f s in all):\n", time.Since(start).Seconds())
		for _, o := range outcomes {
			if o.err != nil {
				fmt.Fprintf(std.out, "  %-12s FAILED: %s\n", o.name, oneLine(o.err.Error()))
				continue
			}
			fmt.Fprintf(std.out, "  %-12s %s\n", o.name, o.summary)
		}
	}
	if err := out.failed(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d lessons failed: %s", len(failed), len(lessons), strings.Join(failed, ", "))
	}
	return nil
}
