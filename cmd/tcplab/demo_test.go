package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/demo"
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

// The names lesson runs tcplab again inside its lab namespace, as its
// child, told so by an environment variable. That variable alone must not
// turn an ordinary command into the child: before, any tcplab command run
// with TCPLAB_DEMO_NAMES_CHILD set (tcplab tms 2000, tcplab --version)
// looked up server.lab with the machine's DNS server, connected to it if
// it resolved, printed a JSON report instead of doing its job, and
// exited 0. Only a process really inside the lab namespace it names is
// the child.
func TestNamesChildVariableDoesNotHijackACommand(t *testing.T) {
	specs := []string{"80", "tcplab-nosuch-a:80", "tcplab-1-2-a:x"}
	if netlab.Check() == nil {
		// A real lab namespace, which this process is not in.
		l, err := netlab.New()
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		specs = append(specs, l.A.Name+":80")
	}
	for _, spec := range specs {
		env := append(os.Environ(), "TCPLAB_DEMO_NAMES_CHILD="+spec)
		p := testkit.StartEnv(t, env, nil, testkit.Binary(t), "--version")
		if code := p.Wait(t, 30*time.Second); code != 0 || !strings.HasPrefix(p.Stdout.String(), "tcplab ") || strings.Contains(p.Stdout.String(), "Lookups") {
			t.Errorf("TCPLAB_DEMO_NAMES_CHILD=%s tcplab --version: exit %d, stdout %q", spec, code, p.Stdout.String())
		}
	}
}

// Ctrl-C at a terminal sends SIGINT to the whole foreground process
// group: tcplab and the ip commands it runs to build and remove the lab.
// tcplab handles it and removes its namespaces; an ip killed by it
// leaves its job undone. Here a stand-in ip, first on PATH, holds the
// lesson's first "ip netns del" until the group has had its SIGINT; before
// the lab's commands ran in their own process group, that ip died with
// the group and namespace A outlived tcplab.
func TestDemoCtrlCDuringTeardownLeavesNoNamespace(t *testing.T) {
	if err := netlab.Check(); err != nil {
		t.Skip(err)
	}
	realIP, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	held, resume, mark := filepath.Join(dir, "held"), filepath.Join(dir, "resume"), filepath.Join(dir, "mark")
	for _, f := range []string{held, resume} {
		if err := unix.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
case "$*" in
"netns del "*-probe-*) ;;
"netns del tcplab-$PPID-"*)
	if [ ! -e '` + mark + `' ]; then
		: > '` + mark + `'
		echo "$*" > '` + held + `'
		read x < '` + resume + `'
	fi ;;
esac
exec '` + realIP + `' "$@"
`
	if err := os.WriteFile(filepath.Join(bin, "ip"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testkit.Binary(t), "demo", "link")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground group
	p := testkit.StartCmd(t, cmd)
	pid := cmd.Process.Pid
	t.Cleanup(func() { // whatever happened, no namespace of this run stays
		names, _ := filepath.Glob(fmt.Sprintf("/run/netns/tcplab-%d-*", pid))
		for _, n := range names {
			exec.Command(realIP, "netns", "del", filepath.Base(n)).Run()
		}
	})
	// The ip that removes namespace A announces itself and waits.
	announced := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(held)
		announced <- b
	}()
	var b []byte
	select {
	case b = <-announced:
	case <-p.Done():
		// Unblock the reader, which would wait for a writer forever.
		if f, err := os.OpenFile(held, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatalf("tcplab exited before removing its lab: stdout %q, stderr %q", p.Stdout.String(), p.Stderr.String())
	}
	if err := syscall.Kill(-pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// Let it go on if it is still there (it is not, when the SIGINT
	// reached it). Opened for reading and writing, the FIFO opens at once
	// whether or not the stand-in has reached its read yet, and keeps
	// the line until it does: the descriptor stays open until tcplab has
	// exited.
	f, err := os.OpenFile(resume, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	code := p.Wait(t, 60*time.Second)
	left, _ := filepath.Glob(fmt.Sprintf("/run/netns/tcplab-%d-*", pid))
	if len(left) != 0 {
		t.Errorf("after SIGINT during %q, tcplab (exit %d) left %v", strings.TrimSpace(string(b)), code, left)
	}
	if code != 130 {
		t.Errorf("exit %d, want 130; stderr %q", code, p.Stderr.String())
	}
	if lines := strings.Count(strings.TrimSpace(p.Stderr.String()), "\n"); lines > 0 {
		t.Errorf("stderr has %d lines, want at most one: %q", lines+1, p.Stderr.String())
	}
}

// A user's descriptor limit (ulimit -n) is no reason for a panic: the poll
// lesson sized its 2000 idle connections as (limit-100)/2 in unsigned
// arithmetic, so a limit of 100 or 101 divided by zero ("panic: runtime
// error: integer divide by zero", exit 2) and one below 100 wrapped
// around to all 2000, which cannot be opened. With a low limit the lesson
// holds what fits, and with none it says so and still runs its epoll loop.
func TestDemoPollUnderALowDescriptorLimit(t *testing.T) {
	for _, limit := range []int{100, 101, 60, 33} {
		// ulimit -n sets both limits; Go raises only the soft one, to the hard.
		p := testkit.Start(t, nil, "/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" demo poll`, limit), testkit.Binary(t))
		code := p.Wait(t, 60*time.Second)
		stdout, stderr := p.Stdout.String(), p.Stderr.String()
		if code != 0 || stderr != "" || !strings.Contains(stdout, "the loop served c3, c1, c2") {
			t.Errorf("ulimit -n %d: exit %d\nstdout %s\nstderr %s", limit, code, stdout, stderr)
		}
		// Parked as bare sockets, every connection needs a third
		// descriptor for a moment (the server copies each before it
		// closes the net.Conns): the lesson leaves room for it, or some
		// stay parked with their net.Conn and it waits in vain.
		held, bare := regexp.MustCompile(`held (\d+) at once`).FindStringSubmatch(stdout), regexp.MustCompile(`held (\d+) as bare sockets`).FindStringSubmatch(stdout)
		if held != nil && (bare == nil || bare[1] != held[1]) {
			t.Errorf("ulimit -n %d: %v held, %v bare\n%s", limit, held, bare, stdout)
		}
	}
}
