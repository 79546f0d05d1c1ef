package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo"
	"github.com/tcplab/tcplab/internal/netlab"
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
// a minute. Without --out it writes no file and leaves no directory: it
// made a /tmp/tcplab-demo-* directory on every run and left it behind.
func TestDemoWholeTour(t *testing.T) {
	tmp := t.TempDir()
	p := testkit.StartEnv(t, append(os.Environ(), "TMPDIR="+tmp), nil, testkit.Binary(t), "demo")
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
	if strings.Contains(stdout, "Files from this tour go to") || !strings.Contains(stdout, "--out DIR") {
		t.Errorf("files written without --out, or no word of --out:\n%s", stdout)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the tour left %v in TMPDIR", left)
	}
}

// Ctrl-C in the middle of a tour leaves nothing behind either.
func TestDemoInterruptedLeavesNoDirectory(t *testing.T) {
	tmp := t.TempDir()
	p := testkit.StartEnv(t, append(os.Environ(), "TMPDIR="+tmp), nil, testkit.Binary(t), "demo", "chunks", "udp")
	p.WaitFor(t, "== chunks:", 30*time.Second)
	p.Cmd.Process.Signal(os.Interrupt)
	if code := p.Wait(t, 30*time.Second); code != exitInterrupted {
		t.Fatalf("exit %d, want %d", code, exitInterrupted)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("an interrupted tour left %v in TMPDIR", left)
	}
}

// demo --json prints no narration, only one object with what each lesson
// measured, for scripts.
func TestDemoJSON(t *testing.T) {
	out := filepath.Join(t.TempDir(), "lab")
	p := testkit.Start(t, nil, testkit.Binary(t), "demo", "--json", "--out", out, "udp", "chunks")
	if code := p.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, p.Stdout.String(), p.Stderr.String())
	}
	var rep struct {
		OK      bool
		OutDir  string `json:"out_dir"`
		Lessons []struct {
			Name, Section, Summary string
			OK                     bool
			Seconds                float64
			Observations           map[string]any
		}
	}
	if err := json.Unmarshal([]byte(p.Stdout.String()), &rep); err != nil {
		t.Fatalf("%v: %q", err, p.Stdout.String())
	}
	if !rep.OK || rep.OutDir != out || len(rep.Lessons) != 2 || rep.Lessons[0].Name != "udp" || !rep.Lessons[0].OK || rep.Lessons[0].Seconds <= 0 {
		t.Fatalf("%+v", rep)
	}
	udp, chunks := rep.Lessons[0].Observations, rep.Lessons[1].Observations
	if udp["max_datagram"] == nil || fmt.Sprint(udp["udp_reads"]) != "[16 14 13 14]" && len(udp["udp_reads"].([]any)) != 4 {
		t.Fatalf("udp observations %v", udp)
	}
	if oe, ok := udp["oversize_err"].(string); !ok || oe == "" {
		t.Fatalf("an error is its text: %v", udp["oversize_err"])
	}
	runs := chunks["runs"].([]any)
	stats := runs[0].(map[string]any)["stats"].(map[string]any)
	if stats["bytes"] != 30000.0 || stats["reads"] == nil || chunks["plot_path"] != filepath.Join(out, "chunks.png") {
		t.Fatalf("chunks observations %v", chunks)
	}
}

// The link lessons through the binary: each writes its capture, which
// tcpdump reads (where installed), and its time-sequence graph; names
// runs the binary itself again inside the lab to resolve a name there.
func TestDemoLinkLessonsWriteCaptures(t *testing.T) {
	if err := netlab.Check(); err != nil {
		t.Skip(err)
	}
	out := filepath.Join(t.TempDir(), "wire")
	p := testkit.Start(t, nil, testkit.Binary(t), "demo", "mac", "names", "tail", "--out", out)
	if code := p.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, p.Stdout.String(), p.Stderr.String())
	}
	stdout := p.Stdout.String()
	for _, want := range []string{"ARP who has 10.200.0.2?", "server.lab is 10.200.0.2", "the longest hold: byte"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, name := range []string{"mac.pcap", "mac-seq.png", "names.pcap", "tail.pcap", "tail-seq.png"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		return
	}
	dump, err := exec.Command(tcpdump, "-nn", "-e", "-r", filepath.Join(out, "mac.pcap")).Output()
	if err != nil || !strings.Contains(string(dump), "Request who-has 10.200.0.2 tell 10.200.0.1") {
		t.Errorf("tcpdump -r mac.pcap: %v\n%s", err, dump)
	}
}
