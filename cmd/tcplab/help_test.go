package main

import (
	"strings"
	"testing"
)

// The prose of every --help fits a terminal of 80 columns (flag lines,
// indented, are the flag package's and may be longer).
func TestHelpProseFitsEightyColumns(t *testing.T) {
	for _, c := range commands {
		_, out, errOut := runCmd(t, "", c.name, "--help")
		for _, line := range strings.Split(out+errOut, "\n") {
			if len(line) > 80 && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
				t.Errorf("%s --help: a line of %d columns: %q", c.name, len(line), line)
			}
		}
	}
}

// Asking for help about help ("tcplab help --help", "tcplab help help")
// prints the command list, as "tcplab help" does; it once recursed until
// the stack overflowed.
func TestHelpAboutHelp(t *testing.T) {
	_, want, _ := runCmd(t, "", "help")
	for _, args := range [][]string{
		{"help", "--help"}, {"help", "-h"}, {"help", "help"}, {"--help", "help"}, {"-h", "-help"},
	} {
		code, out, errOut := runCmd(t, "", args...)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("tcplab %s: exit %d, stdout %q, stderr %q; want 0 and the output of tcplab help", strings.Join(args, " "), code, out, errOut)
		}
	}
}
