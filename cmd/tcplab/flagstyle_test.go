package main

import (
	"regexp"
	"strings"
	"testing"
)

// One flag style everywhere: --help, the README and the error lines all
// write a flag --name (the flag package's own help and errors wrote -name,
// while the README wrote --copies).
func TestHelpWritesFlagsWithTwoDashes(t *testing.T) {
	single := regexp.MustCompile(`(^|[\s(])-[a-z][a-z-]+`)
	for _, c := range commands {
		_, out, _ := runCmd(t, "", c.name, "--help")
		flags := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "  --") {
				flags++
			}
			if m := single.FindString(line); m != "" {
				t.Errorf("%s --help: %q writes a flag with one dash: %q", c.name, m, line)
			}
		}
		if flags == 0 && c.name != "completion" && c.name != "man" {
			t.Errorf("%s --help: no line starts with \"  --\":\n%s", c.name, out)
		}
	}
}

// A bad flag is one line in the same style, naming the flag as --name and
// saying what would be right; a duration without a unit says to add one
// (it said "parse error").
func TestFlagErrorsNameTheFlagWithTwoDashes(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"tms", "--bogus", "2000"}, `tcplab tms: unknown flag --bogus (see 'tcplab tms --help')`},
		{[]string{"tms", "-bogus", "2000"}, `tcplab tms: unknown flag --bogus (see 'tcplab tms --help')`},
		{[]string{"tms", "2000", "--copies"}, `tcplab tms: --copies needs a value (see 'tcplab tms --help')`},
		{[]string{"tms", "--copies", "many", "2000"}, `tcplab tms: --copies "many" is not a whole number (see 'tcplab tms --help')`},
		{[]string{"svr", "--rate", "fast", "2000"}, `tcplab svr: --rate "fast" is not a number (see 'tcplab svr --help')`},
		{[]string{"tmc", "--quiet=maybe", "localhost", "2000", "abc"}, `tcplab tmc: --quiet "maybe" must be true or false (see 'tcplab tmc --help')`},
		{[]string{"tmc", "--timeout", "1", "localhost", "2000", "abc"}, `tcplab tmc: --timeout "1" has no unit: use a unit, as in 1s or 500ms (see 'tcplab tmc --help')`},
		{[]string{"tms", "--gap", "0.5", "2000"}, `tcplab tms: --gap "0.5" has no unit: use a unit, as in 1s or 500ms (see 'tcplab tms --help')`},
		{[]string{"tms", "--write-timeout", "soon", "2000"}, `tcplab tms: --write-timeout "soon" is not a duration: use a number and a unit, as in 1s, 500ms or 1m30s (see 'tcplab tms --help')`},
		{[]string{"tms", "--copies", "99999999999999999999", "2000"}, `tcplab tms: --copies "99999999999999999999" is out of range (see 'tcplab tms --help')`},
	}
	for _, tc := range cases {
		code, out, errOut := runCmd(t, "", tc.args...)
		if code != exitUsage || out != "" || errOut != tc.want+"\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr\n%q, want exit 2 and\n%q", tc.args, code, out, errOut, tc.want+"\n")
		}
	}
}

// -V and --version print the version, as many tools do; tcplab has no
// verbose mode, so -v, what iperf3 and node users type, does too.
func TestVersionFlags(t *testing.T) {
	_, want, _ := runCmd(t, "", "--version")
	if !strings.HasPrefix(want, "tcplab ") {
		t.Fatalf("--version: %q", want)
	}
	for _, arg := range []string{"-V", "-v", "version", "-version"} {
		code, out, errOut := runCmd(t, "", arg)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("tcplab %s: exit %d, stdout %q, stderr %q; want 0 and %q", arg, code, out, errOut, want)
		}
	}
}
