package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
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

// bashComplete sources the bash completion and calls it as bash does
// when TAB is pressed at the end of line, in dir; it returns the
// candidates, sorted.
func bashComplete(t *testing.T, script, dir, line string) []string {
	t.Helper()
	var quoted []string
	for _, w := range bashWords(line) {
		quoted = append(quoted, quoteSingle(w))
	}
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c",
		`source "$1" && COMP_LINE="$2" COMP_POINT=${#2} COMP_WORDS=(`+strings.Join(quoted, " ")+`) && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _tcplab && printf '%s\n' "${COMPREPLY[@]}"`,
		"bash", script, line)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%q: bash: %v\n%s", line, err, out)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	return got
}

// bashWords splits a command line into COMP_WORDS as bash 5.2 does (seen
// in an interactive bash): at blanks, and around each run of the
// COMP_WORDBREAKS characters "=" and ":", which become words of their
// own: "--hosts a:1" is "--hosts" "a" ":" "1", "::1" is "::" "1". A line
// ending in a blank ends with an empty word.
func bashWords(line string) []string {
	var words []string
	for _, field := range strings.Fields(line) {
		isBreak := func(r rune) bool { return r == '=' || r == ':' }
		for field != "" {
			brk := isBreak(rune(field[0]))
			i := strings.IndexFunc(field, func(r rune) bool { return isBreak(r) != brk })
			if i < 0 {
				i = len(field)
			}
			words = append(words, field[:i])
			field = field[i:]
		}
	}
	if line == "" || strings.HasSuffix(line, " ") {
		words = append(words, "")
	}
	return words
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
	os.WriteFile(filepath.Join(dir, "lab:x.png"), nil, 0o644)
	cases := []struct {
		line string
		want []string
	}{
		{"tcplab tm", []string{"tmc", "tms"}},
		{"tcplab --v", []string{"--version"}},
		{"tcplab help st", []string{"strclnt", "strsvr"}},
		{"tcplab tms --log-format ", []string{"json", "text"}},
		{"tcplab tms --log-format=j", []string{"json"}},
		{"tcplab tms --log-format=", []string{"json", "text"}},
		{"tcplab tms -log-format=t", []string{"text"}},
		{"tcplab tms -log-format t", []string{"text"}},
		{"tcplab strsvr --fsync ", []string{"always", "interval"}},
		{"tcplab svr --commands u", []string{"uptime"}},
		{"tcplab demo ud", []string{"udp"}},
		{"tcplab demo udp --out l", []string{"lab"}},
		{"tcplab demo udp t", []string{"tail"}},
		{"tcplab completion ", []string{"bash", "fish", "zsh"}},
		{"tcplab tmc --plot ch", []string{"chunks.png"}},
		{"tcplab tmc --plot x.png --qu", []string{"--quiet"}},
		{"tcplab wps localhost 2000 p", []string{"ps"}},
		{"tcplab wps --timeout 5s localhost 2000 u", []string{"uptime"}},
		{"tcplab wps --json localhost 2000 u", []string{"uptime"}},
		{"tcplab wps localhost u", nil}, // PORT: nothing to offer
		{"tcplab tms --copies ", nil},
		// "--flag=value", which bash splits at "=" into three words
		// (COMP_WORDBREAKS), is one flag and its value: the words after
		// it are counted from the first argument. The value was counted
		// as an argument, so nothing was offered for COMMAND here.
		{"tcplab wps --timeout=3s localhost 2000 u", []string{"uptime"}},
		{"tcplab demo --out=lab ud", []string{"udp"}},
		{"tcplab wps --timeout=3s localhost u", nil},
		// wps's other form, "--hosts HOST:PORT,... [COMMAND]": its
		// first argument is COMMAND, not HOST. HOST was offered.
		{"tcplab wps --hosts a:1,b:2 u", []string{"uptime"}},
		{"tcplab wps --hosts=a:1 u", []string{"uptime"}},
		{"tcplab wps -hosts=a:1 u", []string{"uptime"}},
		{"tcplab wps --json --hosts a:1 --timeout 1s p", []string{"ps"}},
		{"tcplab wps --hosts a:1 ps u", nil},
		// bash splits at ":" too: "a:1,b:2" is five words, "::1" two.
		// They were counted as arguments, so nothing was offered.
		{"tcplab wps --hosts a:1,b:2 --json u", []string{"uptime"}},
		{"tcplab wps ::1 2000 u", []string{"uptime"}},
		{"tcplab wps [::1]:2000 u", nil},
		{"tcplab demo --out=a:b ud", []string{"udp"}},
		// A candidate with a ":" replaces only what follows the
		// word's last ":" (readline's word).
		{"tcplab tmc --plot=lab:", []string{"x.png"}},
	}
	for _, tc := range cases {
		if got := bashComplete(t, script, dir, tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	// Every command's flags, as --help lists them (and --help).
	for _, c := range commands {
		want := append(helpFlags(t, c.name), "--help")
		slices.Sort(want)
		if got := bashComplete(t, script, dir, "tcplab "+c.name+" --"); !slices.Equal(got, want) {
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

// zshComplete types each line into one interactive zsh that loaded the
// completion as _tcplab, presses TAB once, and returns the command lines
// zsh then holds. zsh reads its input in order, so the keys after TAB
// act once the completion is done: nothing waits on time (the deadline
// only bounds a hung shell).
func zshComplete(t *testing.T, dir string, lines []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "zsh", "-f", "-i")
	cmd.Env = append(os.Environ(), "TERM=dumb", "HOME="+t.TempDir())
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var keys strings.Builder
	fmt.Fprintf(&keys, "fpath=(%s $fpath); autoload -U compinit; compinit -u -D\n", dir)
	for _, line := range lines {
		// ^A and ^E: the start and the end of the line, to print it.
		fmt.Fprintf(&keys, "%s\t\x01print -r -- '>>\x05<<'\n", line)
	}
	keys.WriteString("exit\n")
	go io.WriteString(ptmx, keys.String()) // more than a pty's buffer: zsh reads as we read
	out, _ := io.ReadAll(ptmx)             // ends with EIO when zsh exits
	cmd.Wait()
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^>>(.*)<<\r?$`).FindAllStringSubmatch(string(out), -1) {
		got = append(got, m[1])
	}
	if len(got) != len(lines) {
		t.Fatalf("zsh printed %d lines for %d:\n%q", len(got), len(lines), out)
	}
	return got
}

// zsh runs the completion for real, in an interactive shell on a
// terminal: the command, a flag's value given with "=", and wps's other
// form, whose first argument is COMMAND (HOST was offered there).
func TestZshCompletionInteractive(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not installed (scripts/test.sh installs it)")
	}
	script := completionScript(t, "zsh")
	dir := t.TempDir()
	if err := os.Rename(script, filepath.Join(dir, "_tcplab")); err != nil {
		t.Fatal(err)
	}
	// zsh drops the space after a completion when the next key is not
	// one: the lines end without it.
	cases := []struct{ line, want string }{
		{"tcplab compl", "tcplab completion"},
		{"tcplab demo ud", "tcplab demo udp"},
		{"tcplab tms --log-format=j", "tcplab tms --log-format=json"},
		{"tcplab tms --log-format j", "tcplab tms --log-format json"},
		{"tcplab wps localhost 2000 upt", "tcplab wps localhost 2000 uptime"},
		{"tcplab wps --hosts a:1,b:2 upt", "tcplab wps --hosts a:1,b:2 uptime"},
		{"tcplab wps --hosts=a:1 --json upt", "tcplab wps --hosts=a:1 --json uptime"},
	}
	var lines []string
	for _, tc := range cases {
		lines = append(lines, tc.line)
	}
	got := zshComplete(t, dir, lines)
	for i, tc := range cases {
		if got[i] != tc.want {
			t.Errorf("%q<TAB>: got %q, want %q", tc.line, got[i], tc.want)
		}
	}
}
