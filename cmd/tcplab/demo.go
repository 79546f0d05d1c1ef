package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/tcplab/tcplab/demo"
)

// errInterrupted ends a tour stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

func runDemo(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("demo")
	list := fs.Bool("list", false, "list the lessons and exit")
	outDir := fs.String("out", "", "write the lessons' files (chunk plot, captures and their time-sequence graphs) to `DIR` (default: a new temporary directory, printed)")
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
		if _, err := fmt.Fprintf(std.out, "Files from this tour go to %s\n\n", opts.OutDir); err != nil {
			return err
		}
		break
	}
	if err := demo.Tour(ctx, std.out, lessons, opts); err != nil && ctx.Err() == nil {
		return err
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	return nil
}
