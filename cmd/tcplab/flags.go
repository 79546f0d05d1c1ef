package main

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// usageError is bad input from the user: exit code 2 and a pointer to --help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// helpText holds each command's --help prose, help/NAME.txt: the synopsis
// on the first line, then what the command does, then "Examples:" and one
// command line per line. Prose reads and diffs better as text than as a Go
// string, and the command's code stays flags, config and run.
//
//go:embed help/*.txt
var helpText embed.FS

// flagSet is a command's flags with the text --help prints around them.
type flagSet struct {
	*flag.FlagSet
	name     string
	synopsis string   // e.g. "[flags] PORT"
	about    string   // what the command does, a few lines
	examples []string // command lines, shown under "Examples:"
}

// newFlagSet returns the flags of command name, with its help text;
// replace holds old, new pairs filled into the text ("{builtins}" and the
// list it stands for).
func newFlagSet(name string, replace ...string) *flagSet {
	b, err := helpText.ReadFile("help/" + name + ".txt")
	if err != nil {
		panic("no help text for " + name) // a build without it is broken
	}
	text := strings.NewReplacer(replace...).Replace(string(b))
	synopsis, about, _ := strings.Cut(text, "\n")
	about, examples, _ := strings.Cut(about, "\nExamples:\n")
	fs := &flagSet{
		FlagSet:  flag.NewFlagSet(name, flag.ContinueOnError),
		name:     name,
		synopsis: synopsis,
		about:    strings.TrimSpace(about),
	}
	for _, e := range strings.Split(strings.TrimRight(examples, "\n"), "\n") {
		if e = strings.TrimSpace(e); e != "" {
			fs.examples = append(fs.examples, e)
		}
	}
	fs.SetOutput(io.Discard) // errors become one line in run; help is printed by us
	return fs
}

func (fs *flagSet) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: tcplab %s %s\n\n%s\n", fs.name, fs.synopsis, strings.TrimSpace(fs.about))
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		fs.printFlags(w)
	}
	if len(fs.examples) > 0 {
		fmt.Fprint(w, "\nExamples:\n")
		for _, e := range fs.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// parse parses args, letting flags come before, between or after the
// positional arguments (as in "tcplab tms 2000 --no-wait"), and checks the
// number of positionals against [minArgs, maxArgs] (maxArgs < 0: no limit).
// --help prints the help to std.out and returns flag.ErrHelp.
func (fs *flagSet) parse(std stdio, args []string, minArgs, maxArgs int) ([]string, error) {
	if std.describe != nil {
		std.describe(fs)
		return nil, errDescribed
	}
	// Everything after "--" is positional, even if it looks like a flag
	// (tcplab tmc localhost 2000 -- -abc).
	var rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				var help bytes.Buffer
				fs.printHelp(&help)
				if _, err := std.out.Write(help.Bytes()); err != nil {
					return nil, helpNotPrinted{err}
				}
				return nil, flag.ErrHelp
			}
			return nil, fs.flagError(err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	positional = append(positional, rest...)
	if err := fs.checkDurations(); err != nil {
		return nil, err
	}
	switch {
	case len(positional) < minArgs:
		return nil, usagef("missing arguments: usage: tcplab %s %s", fs.name, fs.synopsis)
	case maxArgs >= 0 && len(positional) > maxArgs:
		return nil, usagef("too many arguments: usage: tcplab %s %s", fs.name, fs.synopsis)
	}
	return positional, nil
}

// checkDurations refuses a negative value for any duration flag the user
// set. No tcplab timeout, gap or grace period has a meaning below zero, and
// the libraries read zero or less as "use the default" or "no limit", so
// without this check "--read-timeout=-3s" would silently mean 30 s and
// "--timeout -1s" a connect that times out at once.
func (fs *flagSet) checkDurations() error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		if d, ok := g.Get().(time.Duration); ok && d < 0 {
			err = usagef("--%s must not be negative, not %s", f.Name, d)
		}
	})
	return err
}

// isSet reports whether the user gave the flag name.
func (fs *flagSet) isSet(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// refuseZero refuses zero for each flag named that the user gave: the
// flag's zero is not its config field's zero (the default) but a value
// out of range, said as the config says it of a negative one.
func (fs *flagSet) refuseZero(names ...string) error {
	for _, name := range names {
		if !fs.isSet(name) {
			continue
		}
		switch v := fs.Lookup(name).Value.(flag.Getter).Get().(type) {
		case int, int64:
			if v == 0 || v == int64(0) {
				return usagef("--%s must be at least 1, not 0", name)
			}
		case time.Duration:
			if v == 0 {
				return usagef("--%s must be positive, not 0s", name)
			}
		}
	}
	return nil
}

// configError is a config's Validate error as a usage error, each field
// written as the flag that sets it (fields: field name to flag name).
func (fs *flagSet) configError(err error, fields map[string]string) error {
	var ce *server.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	return usageError{ce.Text(func(field string) string {
		if name, ok := fields[field]; ok {
			return "--" + name
		}
		return field
	})}
}

// printFlags lists the flags as the flag package's PrintDefaults does, but
// each written --name, as the README and the error lines write them: one
// style everywhere.
func (fs *flagSet) printFlags(w io.Writer) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if def := defaultText(f); def != "" {
			usage += " (default " + def + ")"
		}
		fmt.Fprintln(w, line)
		fmt.Fprint(w, wrap(usage, "      ", 80))
	})
}

// wrap breaks text into lines of at most width columns (a longer word
// has a line of its own), each starting with indent.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if line != indent && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	if line != indent {
		b.WriteString(line + "\n")
	}
	return b.String()
}

// defaultText is a flag's default as --help shows it, or "" when it is
// the zero value of its type, which goes without saying.
func defaultText(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return ""
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, isString := g.Get().(string); isString {
			return strconv.Quote(f.DefValue)
		}
	}
	return f.DefValue
}

// The flag package's parse errors, which write a flag -name.
var (
	flagUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	flagNoValue   = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	flagBadValue  = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-+([^:]*): (.*)$`)
)

// flagError turns a parse error of the flag package into the usage error
// a user reads: the flag written --name, and what a right value looks
// like (a duration without a unit said only "parse error").
func (fs *flagSet) flagError(err error) error {
	msg := err.Error()
	if m := flagUndefined.FindStringSubmatch(msg); m != nil {
		return usagef("unknown flag --%s", m[1])
	}
	if m := flagNoValue.FindStringSubmatch(msg); m != nil {
		return usagef("--%s needs a value", m[1])
	}
	m := flagBadValue.FindStringSubmatch(msg)
	if m == nil {
		return usageError{msg}
	}
	value, name, why := m[1], m[2], m[3]
	f := fs.Lookup(name)
	if f == nil {
		return usageError{msg}
	}
	bad := fmt.Sprintf("--%s %q", name, value)
	if why == errGivenTwice.Error() {
		return usagef("--%s %s", name, why)
	}
	if strings.Contains(why, "out of range") {
		return usagef("%s is out of range", bad)
	}
	g, _ := f.Value.(flag.Getter)
	if g == nil {
		return usagef("%s: %s", bad, why)
	}
	switch g.Get().(type) {
	case time.Duration:
		if _, err := strconv.ParseFloat(value, 64); err == nil {
			return usagef("%s has no unit: use a unit, as in 1s or 500ms", bad)
		}
		return usagef("%s is not a duration: use a number and a unit, as in 1s, 500ms or 1m30s", bad)
	case bool:
		return usagef("%s must be true or false", bad)
	case int, int64, uint, uint64:
		return usagef("%s is not a whole number", bad)
	case float64:
		return usagef("%s is not a number", bad)
	}
	return usagef("%s: %s", bad, why)
}
