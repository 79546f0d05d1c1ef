package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/safetext"
)

// Tour runs lessons in order, each page headed by header, and, when there
// is more than one, ends with a summary line per lesson. A lesson that
// fails is reported on its page and the tour goes on; Tour then returns an
// error naming the failed lessons. It returns ctx's error as soon as ctx
// ends, and the first failed write to w (a full disk) as soon as one
// fails: the pages would go nowhere, and every lesson would seem to fail.
func Tour(ctx context.Context, w io.Writer, lessons []Lesson, opts Options) error {
	out := &stickyWriter{w: w}
	start := time.Now()
	type outcome struct {
		name, summary string
		err           error
	}
	var outcomes []outcome
	var failed []string
	for _, l := range lessons {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintln(out, header(l))
		if err := out.failed(); err != nil {
			return err
		}
		began := time.Now()
		obs, err := l.Run(ctx, out, opts)
		if ctx.Err() == nil && opts.Report != nil {
			opts.Report(l, obs, err, time.Since(began))
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := out.failed(); err != nil {
				return err
			}
			fmt.Fprintf(out, "  FAILED: %s\n\n", safetext.OneLine(err.Error()))
			failed = append(failed, l.Name)
			outcomes = append(outcomes, outcome{name: l.Name, err: err})
			continue
		}
		fmt.Fprintf(out, "  (%.1f s)\n\n", time.Since(began).Seconds())
		outcomes = append(outcomes, outcome{name: l.Name, summary: obs.Summary()})
	}
	if len(lessons) > 1 {
		fmt.Fprintf(out, "What this run showed (%.1f s in all):\n", time.Since(start).Seconds())
		for _, o := range outcomes {
			if o.err != nil {
				fmt.Fprintf(out, "  %-12s FAILED: %s\n", o.name, safetext.OneLine(o.err.Error()))
				continue
			}
			fmt.Fprintf(out, "  %-12s %s\n", o.name, o.summary)
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

// stickyWriter remembers the first error writing to w, and fails every
// write after it. Lessons may write from more than one goroutine.
type stickyWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// failed is the first write error, if any.
func (s *stickyWriter) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
