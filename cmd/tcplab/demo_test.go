package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo"
	"github.com/tcplab/tcplab/internal/testkit"
)

func TestDemoListNamesEveryLesson(t *testing.T) {
	p := testkit.Start(t, nil, testkit.Binary(t), "demo", "--list")
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, p.Stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(p.Stdout.String()), "\n")
	names := demo.Names()
	if len(lines) != len(names) {
		t.Fatalf("--list printed %d lines for %d lessons:\n%s", len(lines), len(names), p.Stdout.String())
	}
	for i, name := range names {
		if !strings.HasPrefix(lines[i], name+" ") {
			t.Errorf("line %d = %q, want lesson %s", i+1, lines[i], name)
		}
	}
}

func TestDemoLessonsWriteToOut(t *testing.T) {
	out := filepath.Join(t.TempDir(), "lab")
	p := testkit.Start(t, nil, testkit.Binary(t), "demo", "udp", "chunks", "--out", out)
	if code := p.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, p.Stdout.String(), p.Stderr.String())
	}
	stdout := p.Stdout.String()
	for _, want := range []string{"== udp:", "UDP: 4 reads", "== chunks:", "Files from this tour go to " + out, "What this run showed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "chunks.png")); err != nil || fi.Size() == 0 {
		t.Errorf("chunk plot: %v", err)
	}
}

func TestDemoUnknownLessonIsAUsageError(t *testing.T) {
	code, _, errOut := runCmd(t, "", "demo", "nosuch")
	if code != 2 || !strings.Contains(errOut, `unknown lesson "nosuch"`) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// The whole tour is the README's first command: it must pass, and in under
// a minute.
func TestDemoWholeTour(t *testing.T) {
	p := testkit.Start(t, nil, testkit.Binary(t), "demo")
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, p.Stdout.String(), p.Stderr.String())
	}
	stdout := p.Stdout.String()
	for _, name := range demo.Names() {
		if !strings.Contains(stdout, "== "+name+":") {
			t.Errorf("the tour skipped %s", name)
		}
	}
	if strings.Contains(stdout, "FAILED") {
		t.Errorf("a lesson failed:\n%s", stdout)
	}
	// The temporary directory it chose is printed, and holds the plot.
	_, rest, ok := strings.Cut(stdout, "Files from this tour go to ")
	dir, _, _ := strings.Cut(rest, "\n")
	if !ok || dir == "" {
		t.Fatalf("no output directory printed:\n%s", stdout)
	}
	defer os.RemoveAll(dir)
	if _, err := os.Stat(filepath.Join(dir, "chunks.png")); err != nil {
		t.Errorf("chunk plot: %v", err)
	}
}
