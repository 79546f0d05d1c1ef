package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ImpostorNames are the programs a server might be tricked into running, or
// that a library might run on its behalf: the allow-list's own programs,
// shells, the tools that libraries fall back to (gopsutil runs loginctl
// where there is no utmp, godbus runs dbus-launch), and the two-letter
// prefixes that a server handing its first two bytes to a shell (the
// tutorial's svr.py) would run for the requests tcplab knows.
var ImpostorNames = []string{
	"loginctl", "w", "ps", "uptime", "free", "df", "sh", "bash", "dash",
	"env", "who", "users", "last", "id", "top", "lsb_release", "dbus-launch",
	"systemctl", "busctl", "getent", "hostname", "uname", "cat", "ls", "lsof",
	"js", "json", "j", "p", "u", "up", "f", "fr", "d", "wj", "pj",
}

// Impostors is a directory of programs, one per name, that each append a
// line "NAME ARGS..." to a record and print nothing. Put Dir first on a
// server's PATH and Ran tells which of them were run.
type Impostors struct {
	Dir    string
	record string
}

// NewImpostors makes the impostor programs for names (ImpostorNames if
// none) in a temporary directory. pass names programs that record their
// run and then exec the real program found in the rest of PATH (for a
// peer such as svr.py, whose w and ps must still answer).
func NewImpostors(tb testing.TB, pass []string, names ...string) *Impostors {
	tb.Helper()
	if len(names) == 0 {
		names = ImpostorNames
	}
	dir := tb.TempDir()
	im := &Impostors{Dir: filepath.Join(dir, "bin"), record: filepath.Join(dir, "ran")}
	if err := os.Mkdir(im.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, n := range names {
		// An absolute interpreter: an impostor named sh must not run itself.
		script := "#!/bin/sh\necho \"" + n + " $*\" >> '" + im.record + "'\n"
		for _, p := range pass {
			if p == n {
				script += "for d in /usr/local/bin /usr/bin /bin; do [ -x \"$d/" + n + "\" ] && exec \"$d/" + n + "\" \"$@\"; done\nexit 127\n"
			}
		}
		if err := os.WriteFile(filepath.Join(im.Dir, n), []byte(script), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return im
}

// Path is PATH with the impostors first.
func (im *Impostors) Path() string { return im.Dir + ":" + os.Getenv("PATH") }

// Ran lists the impostors run so far, one "NAME ARGS" line each.
func (im *Impostors) Ran() []string {
	b, err := os.ReadFile(im.record)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// PythonExe is the Python 3 interpreter itself, not a wrapper script (such
// as pyenv's shims, which an impostor bash or env on PATH would take over).
func PythonExe(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command(Python3(tb), "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		tb.Fatalf("python3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// EnvWithPath is the test's environment with PATH set to path.
func EnvWithPath(path string) []string {
	env := []string{"PATH=" + path}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") {
			env = append(env, e)
		}
	}
	return env
}
