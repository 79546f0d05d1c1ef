package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tcplab/tcplab/internal/demo"
	"github.com/tcplab/tcplab/status"
)

// errDescribed is what a command returns when it was asked only for its
// flags (stdio.describe).
var errDescribed = errors.New("flags described")

// describeCommand returns the flags and help text of command c, as its
// --help shows them, without running it. Every command parses its flags
// before it does anything else, so asking is free of side effects; a
// command that did not reach its parse would be a bug (panic: the tests
// describe every command).
func describeCommand(c command) *flagSet {
	var fs *flagSet
	std := stdio{in: strings.NewReader(""), out: io.Discard, err: io.Discard, describe: func(f *flagSet) { fs = f }}
	if err := c.run(context.Background(), std, nil); !errors.Is(err, errDescribed) || fs == nil {
		panic(fmt.Sprintf("tcplab %s did not describe its flags: %v", c.name, err))
	}
	return fs
}

// logFormats are the values of every server's --log-format (newLogger).
var logFormats = []string{"text", "json"}

// shells are the shells "tcplab completion" writes for.
var shells = []string{"bash", "zsh", "fish"}

// fixedValues is the one table of values that form a fixed set, for the
// completions: a flag's (keyed "--name") or a positional argument's (keyed
// by its name in the synopsis), for one command or, with cmd "", for any.
// Nothing else needs to be listed: the flags, their kinds and the
// arguments come from the commands' own definitions.
func fixedValues(cmd, key string) []string {
	switch cmd + " " + key {
	case " --log-format":
		return logFormats
	case "strsvr --fsync":
		return []string{"always", "interval"} // store.ParseFsync
	case "svr --commands", "wps COMMAND":
		return status.BuiltinNames()
	case "demo LESSON":
		return demo.Names()
	case "completion SHELL":
		return shells
	case "help COMMAND":
		var names []string
		for _, c := range commands {
			names = append(names, c.name)
		}
		return names
	}
	if cmd != "" {
		return fixedValues("", key)
	}
	return nil
}

// valueKind is what a flag's or argument's value is, for completion.
type valueKind int

const (
	anyValue  valueKind = iota // free text: nothing to offer
	noValue                    // a bool flag
	fileValue                  // a path
	dirValue                   // a directory
	hostValue                  // a host name
	setValue                   // one of fixedValues
)

// flagInfo is one flag as the completions and the man page show it.
type flagInfo struct {
	name    string // without dashes
	arg     string // the value's name in --help ("FILE", "int"), "" for a bool
	usage   string // one line
	def     string // the default as --help shows it, "" if the zero value
	kind    valueKind
	choices []string // for setValue
}

// argInfo is one positional argument of a command's synopsis.
type argInfo struct {
	name    string // as in the synopsis: HOST, PORT, LESSON
	many    bool   // LESSON...: any number
	kind    valueKind
	choices []string
}

// spec is what completions and man pages know of a command.
type spec struct {
	name, summary string
	fs            *flagSet
	flags         []flagInfo
	args          []argInfo
	// alt is the synopsis's other form, after its "|", that a flag
	// selects: wps's "--hosts HOST:PORT,... [COMMAND]". Given that flag,
	// the arguments are alt.args.
	alt *altForm
}

// altForm is a second form of a command's arguments, selected by a flag.
type altForm struct {
	flag string // written --name
	args []argInfo
}

// specs describes every command, in "tcplab help" order.
func specs() []spec {
	var out []spec
	for _, c := range commands {
		fs := describeCommand(c)
		s := spec{name: c.name, summary: c.summary, fs: fs}
		fs.VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			fi := flagInfo{name: f.Name, arg: arg, usage: usage, def: defaultText(f)}
			fi.kind, fi.choices = kindOf(c.name, "--"+f.Name, arg)
			if isBool(f) {
				fi.kind, fi.arg = noValue, ""
			}
			s.flags = append(s.flags, fi)
		})
		s.args = synopsisArgs(c.name, fs.synopsis)
		s.alt = synopsisAlt(c.name, fs)
		out = append(out, s)
	}
	return out
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// kindOf is the kind of a value from its name: a fixed set if the table
// has one, a path for FILE, a directory for DIR, a host for HOST.
func kindOf(cmd, key, name string) (valueKind, []string) {
	if v := fixedValues(cmd, key); v != nil {
		return setValue, v
	}
	switch strings.ToUpper(name) {
	case "FILE":
		return fileValue, nil
	case "DIR":
		return dirValue, nil
	case "HOST":
		return hostValue, nil
	}
	return anyValue, nil
}

// synopsisArgs reads the positional arguments from a synopsis such as
// "[flags] HOST PORT STRING" or "[flags] [LESSON...]" (up to a "|", which
// starts another form).
func synopsisArgs(cmd, synopsis string) []argInfo {
	synopsis, _, _ = strings.Cut(synopsis, "|")
	var args []argInfo
	for _, w := range strings.Fields(synopsis) {
		w = strings.Trim(w, "[]")
		if w == "flags" || w == "" {
			continue
		}
		a := argInfo{name: strings.TrimSuffix(w, "..."), many: strings.HasSuffix(w, "...")}
		a.kind, a.choices = kindOf(cmd, a.name, a.name)
		args = append(args, a)
	}
	return args
}

// synopsisAlt reads the form after a synopsis's "|", if it starts with a
// flag: "| --hosts HOST:PORT,... [COMMAND]" is --hosts and COMMAND (the
// flag's value, when it takes one, is not an argument).
func synopsisAlt(cmd string, fs *flagSet) *altForm {
	_, form, ok := strings.Cut(fs.synopsis, "|")
	words := strings.Fields(form)
	if !ok || len(words) == 0 || !strings.HasPrefix(words[0], "-") {
		return nil
	}
	f := fs.Lookup(strings.TrimLeft(words[0], "-"))
	if f == nil {
		return nil
	}
	rest := words[1:]
	if !isBool(f) && len(rest) > 0 {
		rest = rest[1:]
	}
	return &altForm{flag: "--" + f.Name, args: synopsisArgs(cmd, strings.Join(rest, " "))}
}

// valued lists the flags that take a value, written --name.
func (s spec) valued() []string {
	var out []string
	for _, f := range s.flags {
		if f.kind != noValue {
			out = append(out, "--"+f.name)
		}
	}
	return out
}

// flagNames lists every flag, written --name, and --help.
func (s spec) flagNames() []string {
	var out []string
	for _, f := range s.flags {
		out = append(out, "--"+f.name)
	}
	if !slices.Contains(out, "--help") {
		out = append(out, "--help")
	}
	return out
}
