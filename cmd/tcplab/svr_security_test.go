package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// startSVREnv is startSVR with the server's environment set to env.
func startSVREnv(t *testing.T, env []string, args ...string) (*testkit.Proc, string) {
	t.Helper()
	p := testkit.StartEnv(t, env, nil, testkit.Binary(t), append(append([]string{"svr"}, args...), "0")...)
	p.WaitFor(t, "listening", 20*time.Second)
	m := regexp.MustCompile(`"?addr"?[=:]"?\S*:(\d+)`).FindStringSubmatch(p.Stderr.String()[strings.Index(p.Stderr.String(), "listening"):])
	if m == nil {
		t.Fatalf("no port in %q", p.Stderr.String())
	}
	return p, m[1]
}

// envWithPath is the test's environment with PATH replaced.
func envWithPath(path string) []string {
	env := []string{"PATH=" + path}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") {
			env = append(env, e)
		}
	}
	return env
}

// Through the binary: with impostors of loginctl, w, ps, sh, ... first on
// svr's PATH, every command, with the programs and --native, is answered
// and no impostor runs.
func TestSVRRunsNoImpostor(t *testing.T) {
	im := testkit.NewImpostors(t, nil)
	want := map[string]string{"w": "load average", "ps": "COMMAND", "uptime": "load average", "free": "Mem:", "df": "Filesystem", "json": `"uptime_seconds"`}
	for _, mode := range [][]string{nil, {"--native"}} {
		_, port := startSVREnv(t, envWithPath(im.Path()), append([]string{"--commands", "w,ps,uptime,free,df,json"}, mode...)...)
		for _, name := range []string{"w", "ps", "uptime", "free", "df", "json"} {
			code, out, errOut := wpsRun(t, "127.0.0.1", port, name)
			if code != 0 || !strings.Contains(out, want[name]) {
				t.Errorf("%q %s: exit %d, %q, %q", mode, name, code, out[:min(len(out), 200)], errOut)
			}
		}
	}
	if ran := im.Ran(); ran != nil {
		t.Fatalf("svr ran programs outside its allow-list: %q", ran)
	}
}
