package status

import (
	"os/exec"
	"strings"
	"testing"
)

// ps, w and json show other processes' command names only, unless the
// operator asks for their arguments: a secret given on a command line
// (here a process whose arguments hold a marker) is not in the answers by
// default, and is with Args.
func TestAnswersHideOtherProcessesArguments(t *testing.T) {
	const marker = "--password=hunter2-marker"
	p := exec.Command("/bin/sh", "-c", "read x", "sh", marker) // waits on its stdin
	stdin, err := p.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); p.Wait() }()

	for _, native := range []bool{false, true} {
		for _, args := range []bool{false, true} {
			al, err := NewAllowListWith([]string{"w", "ps", "json"}, AllowOptions{Native: native, Args: args})
			if err != nil {
				t.Fatal(err)
			}
			if w := al.Lookup([]byte("w")); !args && w.path != "" {
				t.Errorf("w runs %s though procps's w shows arguments", w.path)
			}
			if ps := al.Lookup([]byte("ps")); !native && !args && strings.Join(ps.argv, " ") != "ps auxc" {
				t.Errorf("ps runs %q", ps.argv)
			}
			svc := newService(t)
			svc.Allow = al
			svc.Runner = &Runner{Fresh: -1}
			addr := startService(t, svc, 0)
			for _, name := range []string{"ps", "json"} {
				out := ask(t, addr, []byte(name))
				if !strings.Contains(out, "sh") {
					t.Fatalf("native %v args %v %s: %q", native, args, name, out)
				}
				if got := strings.Contains(out, marker); got != args {
					t.Errorf("native %v args %v: %s shows the marker: %v", native, args, name, got)
				}
			}
		}
	}
}
