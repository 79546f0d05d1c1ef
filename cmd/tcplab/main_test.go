package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

// TestMain is the package's only TestMain: every command's tests share it.
func TestMain(m *testing.M) { testkit.Main(m) }

// runCmd calls run in-process, as main does, and captures the output.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndVersion(t *testing.T) {
	code, out, _ := runCmd(t, "", "help")
	if code != 0 || !strings.Contains(out, "Commands:") {
		t.Fatalf("help: %d %q", code, out)
	}
	for _, c := range commands {
		if !strings.Contains(out, c.name) {
			t.Errorf("help does not list %s", c.name)
		}
		code, out, _ := runCmd(t, "", c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: tcplab "+c.name) || !strings.Contains(out, "Examples:") {
			t.Errorf("%s --help: exit %d, %q", c.name, code, out)
		}
	}
	if code, out, _ := runCmd(t, "", "--version"); code != 0 || !strings.HasPrefix(out, "tcplab ") {
		t.Fatalf("--version: %d %q", code, out)
	}
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	cases := [][]string{
		{},
		{"nosuchcommand"},
		{"tms"},
		{"tms", "abc"},
		{"tms", "70000"},
		{"tms", "2000", "extra"},
		{"tms", "--copies", "0", "2000"},
		{"tms", "--bogus", "2000"},
		{"tmc", "localhost", "2000"},
		{"tmc", "localhost", "port", "abc"},
		{"tmc", "--timeout", "-1s", "localhost", "2000", "abc"},
		{"tms", "--read-timeout=-3s", "2000"},
		{"tms", "--keep", "2000", "--grace", "-1s"},
		{"svr", "--fresh", "-5s", "2000"},
		{"wps", "localhost", "99999", "w"},
		{"tmc", "--plot", "chunks.txt", "localhost", "1", "abc"}, // refused before connecting
		{"tmc", "--plot", "/dev/null/c.png", "localhost", "1", "abc"},
	}
	for _, args := range cases {
		code, _, errOut := runCmd(t, "", args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if len(args) > 0 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%q: more than one line: %q", args, errOut)
		}
	}
}
