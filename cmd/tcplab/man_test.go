package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

// The pages in docs/man are what "tcplab man --dir" writes now: the flags
// and help text cannot drift from them unnoticed. After a change to a
// flag or help/*.txt: go generate ./cmd/tcplab.
func TestManPagesInDocsAreCurrent(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, "", "man", "--dir", dir); code != 0 {
		t.Fatalf("man --dir: exit %d, %q", code, errOut)
	}
	fresh, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	docs := filepath.Join(testkit.Root(), "docs", "man")
	checked, _ := filepath.Glob(filepath.Join(docs, "*.1"))
	if len(fresh) != len(commands)+1 || len(checked) != len(fresh) {
		t.Errorf("%d pages made, %d in docs/man, want %d (one per command and tcplab.1): run go generate ./cmd/tcplab", len(fresh), len(checked), len(commands)+1)
	}
	for _, p := range fresh {
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(docs, filepath.Base(p)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("docs/man/%s is not what tcplab man writes (%v): run go generate ./cmd/tcplab", filepath.Base(p), err)
		}
	}
}

// Every page renders without a warning from groff, names every flag of its
// command, and "tcplab man CMD" prints the page that --dir writes.
func TestManPagesRender(t *testing.T) {
	dir := t.TempDir()
	runCmd(t, "", "man", "--dir", dir)
	for _, c := range append([]command{{name: ""}}, commands...) {
		name := "tcplab.1"
		args := []string{"man"}
		if c.name != "" {
			name = "tcplab-" + c.name + ".1"
			args = append(args, c.name)
		}
		page, _ := os.ReadFile(filepath.Join(dir, name))
		if code, out, _ := runCmd(t, "", args...); code != 0 || out != string(page) {
			t.Errorf("tcplab %s: exit %d, not the page in %s", strings.Join(args, " "), code, name)
		}
		if c.name != "" {
			for _, f := range helpFlags(t, c.name) {
				if !strings.Contains(string(page), strings.ReplaceAll(f, "-", `\-`)) {
					t.Errorf("%s lacks %s", name, f)
				}
			}
		}
		if _, err := exec.LookPath("groff"); err != nil {
			continue
		}
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(page)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff on %s: %v\n%s", name, err, out)
		}
	}
}

// An unknown COMMAND is one usage line that names the commands, with one
// pointer to help. It ended "(see 'tcplab help') (see 'tcplab man --help')".
func TestManUnknownCommand(t *testing.T) {
	code, out, errOut := runCmd(t, "", "man", "nosuch")
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	want := `tcplab man: unknown command "nosuch": the commands are ` + strings.Join(names, ", ") + ` (see 'tcplab man --help')` + "\n"
	if code != exitUsage || out != "" || errOut != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, exitUsage, want)
	}
}
