package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tcplab/tcplab/internal/demo"
	"github.com/tcplab/tcplab/internal/safetext"
)

// errInterrupted ends a tour stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

// listLessons is demo --list: each lesson's name, title and section.
func listLessons(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range demo.Lessons() {
		fmt.Fprintf(tw, "%s\t%s\t(tutorial %s)\n", l.Name, l.Title, l.Section)
	}
	return tw.Flush()
}

// pickLessons is the lessons named, in that order; none named: all.
func pickLessons(names []string) ([]demo.Lesson, error) {
	if len(names) == 0 {
		return demo.Lessons(), nil
	}
	var lessons []demo.Lesson
	for _, name := range names {
		l, ok := demo.Lookup(name)
		if !ok {
			return nil, usagef("unknown lesson %q; the lessons are %s", name, strings.Join(demo.Names(), ", "))
		}
		lessons = append(lessons, l)
	}
	return lessons, nil
}

func runDemo(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("demo")
	list := fs.Bool("list", false, "list the lessons and exit")
	outDir := fs.String("out", "", "write the lessons' files (chunk plot, captures and their time-sequence graphs) to `DIR`, created if need be (without it, no file is written)")
	asJSON := fs.Bool("json", false, "print no narration, only one JSON object with what each lesson measured (docs/json.md)")
	names, err := fs.parse(std, args, 0, -1)
	if err != nil {
		return err
	}
	if *list {
		return listLessons(std.out)
	}
	lessons, err := pickLessons(names)
	if err != nil {
		return err
	}
	// Files only where the user asked for them: a temporary directory
	// per run was left behind by every tour, interrupted or not.
	opts := demo.Options{OutDir: *outDir}
	if opts.OutDir != "" {
		if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	narration := std.out
	if opts.OutDir != "" && !*asJSON {
		if _, err := fmt.Fprintf(std.out, "Files from this tour go to %s\n\n", opts.OutDir); err != nil {
			return err
		}
	}
	var rep *demoReport
	if *asJSON {
		narration, rep = io.Discard, &demoReport{OutDir: opts.OutDir, Lessons: []demoLesson{}}
		opts.Report = rep.add
	}
	start := time.Now()
	err = demo.Tour(ctx, narration, lessons, opts)
	if ctx.Err() != nil {
		return errInterrupted
	}
	if rep != nil {
		rep.OK, rep.Seconds = err == nil, time.Since(start).Seconds()
		if err != nil {
			rep.Error = safetext.OneLine(err.Error())
		}
		if jerr := json.NewEncoder(std.out).Encode(rep); jerr != nil && err == nil {
			return jerr
		}
	}
	return err
}
