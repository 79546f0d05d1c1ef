package status

import (
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

// Nothing outside the allow-list ever runs, whatever a library would do on
// our behalf: with impostors of every program a server or its libraries
// might start (loginctl, which gopsutil runs where there is no utmp; w, ps,
// sh, ...) first on the server's PATH, every request in every mode is
// answered and not one impostor runs. The programs that do run (w, ps,
// uptime, free, df) are found in FixedPath only.
func TestNoImpostorRuns(t *testing.T) {
	im := testkit.NewImpostors(t, nil)
	t.Setenv("PATH", im.Path())
	want := map[string]string{"w": "load average", "ps": "COMMAND", "uptime": "load average", "free": "Mem:", "df": "Filesystem", "json": `"uptime_seconds"`}
	for _, mode := range []string{"programs", "native", "programs missing"} {
		al, err := NewAllowList(BuiltinNames(), mode == "native")
		if err != nil {
			t.Fatal(err)
		}
		if mode == "programs missing" {
			// As on a host without procps: the entries with a native form
			// fall back to it; free and df have none and are dropped, as
			// NewAllowList would refuse them.
			var kept []*Command
			for _, c := range al.cmds {
				if c.native != nil {
					c.path = ""
					kept = append(kept, c)
				}
			}
			al.cmds = kept
		}
		svc := newService(t)
		svc.Allow = al
		svc.Runner = &Runner{Fresh: -1}
		addr := startService(t, svc, 0)
		for _, name := range al.Names() {
			if out := ask(t, addr, []byte(name)); !strings.Contains(out, want[name]) {
				t.Errorf("%s, %s: answer %q", mode, name, out[:min(len(out), 200)])
			}
		}
	}
	if ran := im.Ran(); ran != nil {
		t.Fatalf("programs outside the allow-list ran: %q", ran)
	}
}
