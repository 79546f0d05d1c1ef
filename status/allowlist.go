package status

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tcplab/tcplab/internal/procps"
)

// Command is one entry of the built-in command set: a name a client may
// send and the fixed argument vector it runs. Commands exist only in this
// package's table; a client's bytes can select one, never build one.
type Command struct {
	name string
	// argv is run as is, argv[0] looked up in FixedPath; nil for a command
	// that exists only natively (json).
	argv []string
	// namesArgv is argv for a server that shows processes' command names
	// only (AllowOptions.Args false), for a command whose report shows
	// other processes' command lines (private); nil when the program has
	// no such mode, and the native renderer serves instead.
	namesArgv []string
	private   bool
	// render renders the report without the program, from /proc and the
	// login records, with or without processes' arguments; nil when there
	// is no native form. NewAllowList binds it to native.
	render func(args bool) ([]byte, error)
	// native renders the same report without the program; nil when there
	// is no native form.
	native func() ([]byte, error)
	// whole marks output that must not be cut at a line (one line of
	// JSON): over the cap it is an error instead.
	whole bool
	// path is argv[0] resolved when the AllowList was made; empty when the
	// program is not installed.
	path string
}

// Name is the name clients send.
func (c *Command) Name() string { return c.name }

// Runs says what runs for c, for a log: the program and its arguments, or
// "native renderer".
func (c *Command) Runs() string {
	if c.path == "" {
		return "native renderer"
	}
	return strings.Join(append([]string{c.path}, c.argv[1:]...), " ")
}

// builtin is every command an operator may allow. No name is a prefix of
// another (TestBuiltinNamesPrefixFree): rule 2 of the wire format relies on
// it.
//
// The argument lists are chosen for someone checking a machine's load from
// afar. The tutorial runs "w" and "ps" bare, through the popen of a server
// started from a terminal, so ps showed that terminal's processes; a server
// started as a daemon has no terminal, and bare ps would show almost
// nothing. "ps aux" shows every process with its CPU and memory share,
// which is what the question "what is running there?" asks. "w" with no
// arguments already covers every user.
//
// ps, w and json show other processes' command lines, which hold secrets
// as often as not (a password given as an argument). Unless the operator
// asks for them (AllowOptions.Args), they show only command names, as the
// tutorial's bare ps does: ps runs as "ps auxc", and w, which has no such
// mode, is rendered natively.
var builtin = []*Command{
	{name: "w", argv: []string{"w"}, private: true, render: procps.W},
	{name: "ps", argv: []string{"ps", "aux"}, namesArgv: []string{"ps", "auxc"}, private: true, render: procps.PS},
	{name: "uptime", argv: []string{"uptime"}, render: func(bool) ([]byte, error) { return procps.Uptime() }},
	{name: "free", argv: []string{"free", "-h"}},
	{name: "df", argv: []string{"df", "-h"}},
	{name: "json", private: true, render: procps.JSON, whole: true},
}

// BuiltinNames lists the names an operator may put on an AllowList.
func BuiltinNames() []string {
	var names []string
	for _, c := range builtin {
		names = append(names, c.name)
	}
	slices.Sort(names)
	return names
}

// DefaultCommands is the allow-list when the operator names none: the
// tutorial's two.
var DefaultCommands = []string{"w", "ps"}

// FixedPath is the only search path for the programs, and the PATH they
// run with: the server's own PATH is not consulted, so a stray "w" earlier
// in it cannot be run.
const FixedPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

// AllowList is the set of commands a server runs. The zero value allows
// nothing; build one with NewAllowList.
type AllowList struct {
	cmds []*Command // sorted by name
}

// AllowOptions are how the commands of an AllowList run.
type AllowOptions struct {
	// Native forces the native renderer for every command that has one,
	// even when the program is installed.
	Native bool
	// Args shows other processes' command-line arguments in ps's COMMAND,
	// w's WHAT and json's command. Without it they show command names
	// only: anyone who may connect sees what runs, not the passwords and
	// tokens that programs are too often given as arguments.
	Args bool
}

// NewAllowList makes an allow-list of the named built-in commands with
// AllowOptions{Native: native}: processes' arguments hidden.
func NewAllowList(names []string, native bool) (*AllowList, error) {
	return NewAllowListWith(names, AllowOptions{Native: native})
}

// NewAllowListWith makes an allow-list of the named built-in commands,
// resolving each program in FixedPath once. A command whose program is
// missing and that has no native form is an error, so the operator learns
// it at start-up, not from a client.
func NewAllowListWith(names []string, opts AllowOptions) (*AllowList, error) {
	native := opts.Native
	al := &AllowList{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(builtin, func(c *Command) bool { return c.name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown command %q; built-in: %s", n, strings.Join(BuiltinNames(), ", "))
		}
		if al.Lookup([]byte(n)) != nil {
			continue
		}
		c := *builtin[i]
		if c.private && !opts.Args {
			c.argv = c.namesArgv
		}
		if render := c.render; render != nil {
			args := opts.Args
			c.native = func() ([]byte, error) { return render(args) }
		}
		if c.argv != nil && !(native && c.native != nil) {
			c.path = lookPath(c.argv[0])
		}
		if c.path == "" && c.native == nil {
			return nil, fmt.Errorf("command %q: %s not found in %s and there is no native form", n, c.argv[0], FixedPath)
		}
		al.cmds = append(al.cmds, &c)
	}
	slices.SortFunc(al.cmds, func(a, b *Command) int { return strings.Compare(a.name, b.name) })
	return al, nil
}

func lookPath(prog string) string {
	for _, dir := range filepath.SplitList(FixedPath) {
		p := filepath.Join(dir, prog)
		if lp, err := exec.LookPath(p); err == nil {
			return lp
		}
	}
	return ""
}

// Lookup returns the entry whose name is exactly name, or nil. It is the
// only bridge from client bytes to something that runs.
func (al *AllowList) Lookup(name []byte) *Command {
	if al == nil {
		return nil
	}
	for _, c := range al.cmds {
		if string(name) == c.name {
			return c
		}
	}
	return nil
}

// Names lists the allowed names, sorted.
func (al *AllowList) Names() []string {
	var names []string
	if al != nil {
		for _, c := range al.cmds {
			names = append(names, c.name)
		}
	}
	return names
}

// Commands lists the allowed entries, sorted by name.
func (al *AllowList) Commands() []*Command {
	if al == nil {
		return nil
	}
	return slices.Clone(al.cmds)
}

// String is the list as the refusal line shows it: "ps, w".
func (al *AllowList) String() string { return strings.Join(al.Names(), ", ") }
