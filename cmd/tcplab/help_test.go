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
