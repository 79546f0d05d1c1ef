package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// exampleBlocks returns the shell blocks of file marked for testing: a
// fenced ```sh block right after a line "<!-- README test: NAME -->".
func exampleBlocks(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testkit.Root(), file))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- README test: ([\\w-]+) -->\n```sh\n(.*?)```")
	blocks := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		blocks[m[1]] = m[2]
	}
	return blocks
}

// markedFiles returns the README and the pages of docs/ (relative to the
// repository's root): the files whose marked blocks must be tested.
func markedFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(testkit.Root(), "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	for _, d := range docs {
		files = append(files, filepath.Join("docs", filepath.Base(d)))
	}
	return files
}

// waiters are put after each line that starts a server in the background
// (wait_port), after each SIGHUP sent to one (wait_log) and after each
// server stopped with kill (wait for its exit): a person types
// the next line later, a script must wait for what the line set off. The
// script's output goes to out.log, so that wait_log can look for the
// server's log line.
const waiters = `exec >out.log 2>&1
wait_port() {
	for _ in $(seq 400); do
		(exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
		sleep 0.05 # polling for the server to listen
	done
	echo "nothing listening on $1" >&2
	return 1
}
wait_log() {
	for _ in $(seq 400); do
		grep -q "$1" out.log && return 0
		sleep 0.05 # polling for the server's log line
	done
	echo "no $1 in the log" >&2
	return 1
}
`

// runExample runs a README block with bash in dir, as typed but for the
// port (2000 becomes port) and a wait after each "... &" line, with the
// built tcplab first on PATH. It returns everything the block printed.
func runExample(t *testing.T, dir, block, port string) string {
	t.Helper()
	background := regexp.MustCompile(`&\s*(#.*)?$`)
	var script strings.Builder
	script.WriteString(waiters)
	for _, line := range strings.Split(block, "\n") {
		line = regexp.MustCompile(`\b2000\b`).ReplaceAllString(line, port)
		script.WriteString(line + "\n")
		switch {
		case background.MatchString(line):
			script.WriteString("wait_port " + port + "\n")
		case strings.HasPrefix(line, "kill -HUP "):
			script.WriteString("wait_log 'TLS certificate reloaded'\n")
		case strings.HasPrefix(line, "kill "):
			// The stopped server's listener stays open for a few ms
			// after the signal: without this wait the next block's
			// wait_port could connect to it, and its client then
			// found the port closed (CI, 2026-12-01).
			script.WriteString("wait " + strings.Fields(line)[1] + " 2>/dev/null\n")
		}
	}
	script.WriteString("wait\n") // the servers the block stopped: their port is free again
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(testkit.Binary(t))+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything the block left running
	out, _ := os.ReadFile(filepath.Join(dir, "out.log"))
	if ctx.Err() != nil {
		t.Fatalf("the example did not finish within 90 s: %s", out)
	}
	if err != nil {
		t.Logf("bash: %v", err) // the last line may fail on purpose
	}
	return string(out)
}

// readmeExample is a marked shell block, the file it is in, and what its
// output must contain.
type readmeExample struct {
	file, name string
	want       []string
}

// readmeExamples are the marked blocks, in the order they run (in one
// directory: the later ones use the certificates the first make), with
// port for 2000.
func readmeExamples(port string) []readmeExample {
	return []readmeExample{
		{"docs/deploy.md", "tls", []string{
			"load average:",                    // wps w
			"localhost:" + port + "  ",         // the fleet table's row
			"verify return:1",                  // s_client checked the certificate
			"SIGHUP: TLS certificate reloaded", // kill -HUP
		}},
		{"docs/deploy.md", "mtls", []string{
			"load average:",
			"tcplab wps: read from localhost:" + port + ": tls: certificate required\n",
		}},
		{"docs/deploy.md", "activation", []string{"load average:"}},
		{"docs/status.md", "status-tls", []string{"load average:", "== localhost:" + port + " ==", "tls=mutual"}},
		{"docs/status.md", "status-activation", []string{"load average:", "tls=on"}},
	}
}

// Every block marked for testing in the README or docs/ is a case of
// TestREADMESecurityExamples, read from the file it is in, and every case
// is found there as a fenced sh block: a block moved to another file,
// dropped, or marked without a test fails here (without the tools the
// examples need) instead of going untested.
func TestREADMEMarkedBlocksAreTested(t *testing.T) {
	cases := map[string]bool{}
	for _, tc := range readmeExamples("2000") {
		cases[tc.file+" "+tc.name] = true
		if _, ok := exampleBlocks(t, tc.file)[tc.name]; !ok {
			t.Errorf("%s: no sh block marked %q", tc.file, tc.name)
		}
	}
	marker := regexp.MustCompile(`<!-- README test: ([^ ]*) -->`)
	for _, file := range markedFiles(t) {
		b, err := os.ReadFile(filepath.Join(testkit.Root(), file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range marker.FindAllStringSubmatch(string(b), -1) {
			if !cases[file+" "+m[1]] {
				t.Errorf("%s: the block marked %q has no case in readmeExamples", file, m[1])
			}
		}
	}
}

// The TLS, mutual TLS and socket activation examples of docs/deploy.md and
// of docs/status.md work as written.
func TestREADMESecurityExamples(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "systemd-socket-activate"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/test.sh installs it)", tool)
		}
	}
	dir := t.TempDir()
	port := strconv.Itoa(testkit.StaticPort(t))
	for _, tc := range readmeExamples(port) {
		block, ok := exampleBlocks(t, tc.file)[tc.name]
		if !ok {
			t.Fatalf("%s: no sh block marked %q", tc.file, tc.name)
		}
		out := runExample(t, dir, block, port)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("README example %q: no %q in its output:\n%s", tc.name, w, out)
			}
		}
		if tc.name == "tls" && strings.Count(out, "load average:") != 2 {
			t.Errorf("README example tls: want 2 answers to w (wps and s_client), got:\n%s", out)
		}
	}
}
