package status

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Command is one entry of the built-in command set: a name a client may
// send and the fixed argument vector it runs. Commands exist only in this
// package's table; a client's bytes can select one, never build one.
type Command struct {
	name string
	// argv is run as is, argv[0] looked up in FixedPath; nil for a command
	// that exists only natively (json).
	argv []string
	// native renders the same report without the program, from /proc and
	// utmp; nil when there is no native form.
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

// Argv is the fixed argument vector, as run; nil for a native-only command.
func (c *Command) Argv() []string { return slices.Clone(c.argv) }

// Path is the program that runs, or "" when the native renderer is used.
func (c *Command) Path() string { return c.path }

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
var builtin = []*Command{
	{name: "w", argv: []string{"w"}, native: renderW},
	{name: "ps", argv: []string{"ps", "aux"}, native: renderPS},
	{name: "uptime", argv: []string{"uptime"}, native: renderUptime},
	{name: "free", argv: []string{"free", "-h"}},
	{name: "df", argv: []string{"df", "-h"}},
	{name: "json", native: renderJSON, whole: true},
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

// NewAllowList makes an allow-list of the named built-in commands,
// resolving each program in FixedPath once. native forces the native
// renderer for every command that has one, even when the program is
// installed. A command whose program is missing and that has no native form
// is an error, so the operator learns it at start-up, not from a client.
func NewAllowList(names []string, native bool) (*AllowList, error) {
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
