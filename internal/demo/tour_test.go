package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

type said string

func (s said) Summary() string { return string(s) }

func fakeLesson(name string, err error) Lesson {
	return Lesson{Name: name, Title: name + " lesson", Section: "0", Run: func(_ context.Context, w io.Writer, _ Options) (Observations, error) {
		io.WriteString(w, "  page of "+name+"\n")
		return said(name + " seen"), err
	}}
}

// A failed lesson is reported on its page and in the summary, the tour
// goes on, and the error names it.
func TestTourReportsAFailedLessonAndGoesOn(t *testing.T) {
	var out bytes.Buffer
	err := Tour(context.Background(), &out, []Lesson{fakeLesson("one", errors.New("it broke\non two lines")), fakeLesson("two", nil)}, Options{})
	if err == nil || err.Error() != "1 of 2 lessons failed: one" {
		t.Fatalf("Tour = %v", err)
	}
	for _, want := range []string{"  page of one\n  FAILED: it broke on two lines\n", "  page of two\n", "  one          FAILED: it broke on two lines\n", "  two          two seen\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after--; w.after < 0 {
		return 0, errors.New("no space left on device")
	}
	return len(p), nil
}

// A tour whose output goes nowhere stops at the first failed write and
// says that, not that every lesson failed.
func TestTourStopsAtAFailedWrite(t *testing.T) {
	ran := 0
	l := fakeLesson("one", nil)
	run := l.Run
	l.Run = func(ctx context.Context, w io.Writer, o Options) (Observations, error) {
		ran++
		return run(ctx, w, o)
	}
	err := Tour(context.Background(), &failingWriter{after: 1}, []Lesson{l, l, l}, Options{})
	if err == nil || err.Error() != "no space left on device" || ran != 1 {
		t.Fatalf("Tour = %v after %d lessons; want the write error after 1", err, ran)
	}
}

// A stopped tour returns ctx's error before the next lesson.
func TestTourStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Tour(ctx, io.Discard, []Lesson{fakeLesson("one", nil)}, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Tour = %v", err)
	}
}

// A lesson's error may quote what came from outside (a peer's answer, a
// name resolved on the lab's network): it reaches the terminal through
// tcplab's one rule (internal/safetext), as every command's errors do.
// Before, the tour joined its lines only, and an escape sequence or a
// right-to-left override passed raw.
func TestTourEscapesAFailedLessonsError(t *testing.T) {
	var out bytes.Buffer
	Tour(context.Background(), &out, []Lesson{fakeLesson("one", errors.New("read \x1b]0;pwned\x07 \u202egnp.exe"))}, Options{})
	if strings.ContainsAny(out.String(), "\x1b\x07\u202e") {
		t.Fatalf("raw controls in:\n%q", out.String())
	}
	if want := `FAILED: read \x1b]0;pwned\x07 \u202egnp.exe`; !strings.Contains(out.String(), want) {
		t.Fatalf("no %q in:\n%s", want, out.String())
	}
}
