package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// completionScript writes "tcplab completion SHELL" to a file and returns
// its path.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, out, errOut := runCmd(t, "", "completion", shell)
	if code != 0 || errOut != "" {
		t.Fatalf("completion %s: exit %d, stderr %q", shell, code, errOut)
	}
	path := filepath.Join(t.TempDir(), "tcplab."+shell)
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// bashComplete sources the bash completion and calls it as bash does for
// the command line words (the last one being completed, "" for a new
// word), in dir; it returns the candidates, sorted.
func bashComplete(t *testing.T, script, dir string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, quoteSingle(w))
	}
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c",
		`source "$1" && COMP_WORDS=(`+strings.Join(quoted, " ")+`) && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _tcplab && printf '%s\n' "${COMPREPLY[@]}"`,
		"bash", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%q: bash: %v\n%s", words, err, out)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	return got
}

// helpFlags lists the flags "tcplab CMD --help" prints, as --name.
func helpFlags(t *testing.T, cmd string) []string {
	t.Helper()
	_, out, _ := runCmd(t, "", cmd, "--help")
	var flags []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "  --") {
			flags = append(flags, strings.Fields(line)[0])
		}
	}
	return flags
}

// The bash completion, sourced in bash and called as bash calls it: the
// commands, every command's flags exactly as --help lists them, the
// values of the flags and arguments with a fixed set, files where a flag
// takes a FILE.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	script := completionScript(t, "bash")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "chunks.png"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "lab"), 0o755)
	cases := []struct {
		words []string
		want  []string
	}{
		{[]string{"tcplab", "tm"}, []string{"tmc", "tms"}},
		{[]string{"tcplab", "--v"}, []string{"--version"}},
		{[]string{"tcplab", "help", "st"}, []string{"strclnt", "strsvr"}},
		{[]string{"tcplab", "tms", "--log-format", ""}, []string{"json", "text"}},
		{[]string{"tcplab", "tms", "--log-format", "=", "j"}, []string{"json"}},
		{[]string{"tcplab", "tms", "--log-format=j"}, []string{"json"}},
		{[]string{"tcplab", "tms", "-log-format", "t"}, []string{"text"}},
		{[]string{"tcplab", "strsvr", "--fsync", ""}, []string{"always", "interval"}},
		{[]string{"tcplab", "svr", "--commands", "u"}, []string{"uptime"}},
		{[]string{"tcplab", "demo", "ud"}, []string{"udp"}},
		{[]string{"tcplab", "demo", "udp", "--out", "l"}, []string{"lab"}},
		{[]string{"tcplab", "demo", "udp", "t"}, []string{"tail"}},
		{[]string{"tcplab", "completion", ""}, []string{"bash", "fish", "zsh"}},
		{[]string{"tcplab", "tmc", "--plot", "ch"}, []string{"chunks.png"}},
		{[]string{"tcplab", "tmc", "--plot", "x.png", "--qu"}, []string{"--quiet"}},
		{[]string{"tcplab", "wps", "localhost", "2000", "p"}, []string{"ps"}},
		{[]string{"tcplab", "wps", "--timeout", "5s", "localhost", "2000", "u"}, []string{"uptime"}},
		{[]string{"tcplab", "wps", "--json", "localhost", "2000", "u"}, []string{"uptime"}},
		{[]string{"tcplab", "wps", "localhost", "u"}, nil}, // PORT: nothing to offer
		{[]string{"tcplab", "tms", "--copies", ""}, nil},
	}
	for _, tc := range cases {
		if got := bashComplete(t, script, dir, tc.words...); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.words, got, tc.want)
		}
	}
	// Every command's flags, as --help lists them (and --help).
	for _, c := range commands {
		want := append(helpFlags(t, c.name), "--help")
		slices.Sort(want)
		if got := bashComplete(t, script, dir, "tcplab", c.name, "--"); !slices.Equal(got, want) {
			t.Errorf("tcplab %s --<TAB>: got %q, want %q (from --help)", c.name, got, want)
		}
	}
}

// The fixed sets the completions offer are what the commands accept.
func TestFixedValuesAreAccepted(t *testing.T) {
	for _, v := range fixedValues("tms", "--log-format") {
		if _, err := newLogger(&strings.Builder{}, v); err != nil {
			t.Errorf("--log-format %s: %v", v, err)
		}
	}
	for _, v := range fixedValues("strsvr", "--fsync") {
		w := storePlace{fsync: v, fsyncEvery: 1}
		if err := w.checkFsync(); err != nil {
			t.Errorf("--fsync %s: %v", v, err)
		}
	}
	for _, v := range fixedValues("completion", "SHELL") {
		if code, _, errOut := runCmd(t, "", "completion", v); code != 0 {
			t.Errorf("completion %s: exit %d, %q", v, code, errOut)
		}
	}
	for _, v := range fixedValues("demo", "LESSON") {
		if code, _, errOut := runCmd(t, "", "demo", "--list", v); code != 0 {
			t.Errorf("demo %s: exit %d, %q", v, code, errOut)
		}
	}
	if len(fixedValues("svr", "--commands")) == 0 || len(fixedValues("wps", "COMMAND")) == 0 {
		t.Error("no built-in commands to offer")
	}
}

// fish runs the completion for real: "complete -C" prints what fish would
// offer for a command line.
func TestFishCompletion(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish not installed (scripts/test.sh installs it)")
	}
	script := completionScript(t, "fish")
	complete := func(line string) []string {
		out, err := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, script, line).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: fish: %v\n%s", line, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				got = append(got, strings.Split(l, "\t")[0])
			}
		}
		slices.Sort(got)
		return got
	}
	if got := complete("tcplab tm"); !slices.Equal(got, []string{"tmc", "tms"}) {
		t.Errorf("tcplab tm: %q", got)
	}
	if got := complete("tcplab tms --log-format "); !slices.Equal(got, []string{"json", "text"}) {
		t.Errorf("tcplab tms --log-format: %q", got)
	}
	if got := complete("tcplab demo ud"); !slices.Equal(got, []string{"udp"}) {
		t.Errorf("tcplab demo ud: %q", got)
	}
	for _, c := range commands {
		want := helpFlags(t, c.name)
		slices.Sort(want)
		if got := complete("tcplab " + c.name + " --"); !slices.Equal(got, want) {
			t.Errorf("tcplab %s --<TAB>: got %q, want %q (from --help)", c.name, got, want)
		}
	}
}

// zsh reads the script without a syntax error, and it names every flag
// and every fixed value of every command.
func TestZshCompletion(t *testing.T) {
	script := completionScript(t, "zsh")
	b, _ := os.ReadFile(script)
	text := string(b)
	for _, c := range commands {
		for _, f := range helpFlags(t, c.name) {
			if !strings.Contains(text, "'"+f+"[") && !strings.Contains(text, "'"+f+"=[") {
				t.Errorf("zsh completion lacks %s %s", c.name, f)
			}
		}
	}
	for _, v := range fixedValues("demo", "LESSON") {
		if !regexp.MustCompile(`[( ]` + v + `[ )]`).MatchString(text) {
			t.Errorf("zsh completion lacks lesson %s", v)
		}
	}
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not installed (scripts/test.sh installs it)")
	}
	if out, err := exec.Command("zsh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
}

func TestCompletionUnknownShell(t *testing.T) {
	code, _, errOut := runCmd(t, "", "completion", "tcsh")
	if code != exitUsage || !strings.Contains(errOut, `unknown shell "tcsh"`) {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}
