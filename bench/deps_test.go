package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The benchmark program does not link the testing package (its flags, its
// init, its size): what bench shares with the tests lives in non-test
// packages such as internal/redisproc. It linked testing through
// internal/redistest and internal/testkit.
func TestBenchDoesNotLinkTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if slices.Contains(deps, "testing") {
		var via []string
		for _, d := range deps {
			if strings.HasPrefix(d, "github.com/tcplab/tcplab/") {
				via = append(via, d)
			}
		}
		t.Errorf("bench links testing; its packages from this module: %s", strings.Join(via, " "))
	}
}
