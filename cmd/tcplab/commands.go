package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"text/tabwriter"
)

// stdio is what a command may touch of the outside world besides the
// network: the three standard streams, passed in so tests can capture them.
type stdio struct {
	in       io.Reader
	out, err io.Writer

	// describe, when set, asks the command for its flags instead of
	// running it: its flagSet's parse hands the flags, fully defined, to
	// describe and returns errDescribed, before anything else happens.
	// Completions and man pages are made so (see describeCommand), from
	// the very definitions --help prints and the parser reads.
	describe func(*flagSet)

	// hurry is closed on a second stop signal (see notifySignals): a
	// server gives it to server.Server's Hurry.
	hurry <-chan struct{}
}

// A command is one tcplab subcommand. run returns a usageError for bad
// input (exit 2), flag.ErrHelp after printing help (exit 0), or any other
// error for a runtime failure (exit 1); a command stopped by a signal or a
// closed standard output exits 130, 143 or 141 whatever it returns (see
// exitCode).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, std stdio, args []string) error
}

// commands lists the subcommands in the order "tcplab help" shows them.
// Each lives in its own file, named after it.
var commands = []command{
	{"demo", "tour the tutorial's lessons live on loopback", runDemo},
	{"tms", "multicopy echo server (tutorial section 2, tms.py)", runTMS},
	{"tmc", "multicopy echo client (tutorial section 2, tmc.py)", runTMC},
	{"strsvr", "shared-string server (tutorial section 6, strsvr.py)", runStrSvr},
	{"strclnt", "shared-string client (tutorial section 6, strclnt.py)", runStrClnt},
	{"svr", "remote w/ps server (tutorial section 5.2, svr.py)", runSVR},
	{"wps", "remote w/ps client, one host or a fleet (svr.py's client wps.py)", runWPS},
}

// The commands that describe the others come last; added here, as they
// read the table (an initialization cycle otherwise).
func init() {
	commands = append(commands,
		command{"completion", "shell completion for bash, zsh or fish", runCompletion},
		command{"man", "the manual pages (roff), one or all", runMan},
	)
}

// version is set at link time (-ldflags "-X main.version=..."); otherwise it
// comes from the build information: the module's version when built by
// "go install ...@v1.2.3", else the VCS revision "go build" stamps in a
// checkout, marked "+dirty" when the tree had changes.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	return buildVersion(bi)
}

func buildVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, when string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel, no version control information)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	if when != "" {
		rev += " (" + when + ")"
	}
	return "rev " + rev
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runStd(ctx, args, stdio{in: stdin, out: stdout, err: stderr})
}

// runStd is run with std, whose hurry main sets.
func runStd(ctx context.Context, args []string, std stdio) int {
	stdin, stdout, stderr := std.in, std.out, std.err
	if len(args) == 0 {
		printHelp(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && !isHelpWord(args[1]) {
			return run(ctx, []string{args[1], "--help"}, stdin, stdout, stderr)
		}
		var help bytes.Buffer
		printHelp(&help)
		_, err := stdout.Write(help.Bytes())
		return printedStatus("tcplab", err, stderr)
	case "version", "-version", "--version", "-V", "-v":
		_, err := fmt.Fprintf(stdout, "tcplab %s\n", versionString())
		return printedStatus("tcplab", err, stderr)
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		if !serverCommands[name] {
			std.out = &clientStdout{w: stdout, cancel: cancel}
		}
		return exitCode(ctx, name, c.run(ctx, std, args[1:]), stderr)
	}
	fmt.Fprintf(stderr, "tcplab: unknown command %q (see 'tcplab help')\n", name)
	return 2
}

// isHelpWord reports whether arg asks for help, as "help" and "--help" do:
// "tcplab help --help" is help about help, the command list.
func isHelpWord(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `tcplab: the "Network Programming with Python" tutorial, built in Go.

Usage: tcplab COMMAND [flags] ARGS...

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Run 'tcplab COMMAND --help' for a command's flags and an example,
'tcplab --version' (or -V) for the version. Start with 'tcplab demo'.

Exit status: 0 done, 1 failed (one line says why), 2 bad usage (the line
names the flag), 130 SIGINT, 143 SIGTERM, 141 a client's output was closed.
`)
}
