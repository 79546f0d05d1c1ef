package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

//go:generate go run . man --dir ../../docs/man

func runMan(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("man")
	dir := fs.String("dir", "", "write every page to `DIR` instead (tcplab.1, tcplab-COMMAND.1)")
	pos, err := fs.parse(std, args, 0, 1)
	if err != nil {
		return err
	}
	all := specs()
	if *dir != "" {
		if len(pos) > 0 {
			return usagef("--dir writes every page: give no COMMAND")
		}
		return writeManPages(*dir, all)
	}
	if len(pos) == 0 {
		_, err := io.WriteString(std.out, manIndex(all))
		return err
	}
	for _, s := range all {
		if s.name == pos[0] {
			_, err := io.WriteString(std.out, manPage(s))
			return err
		}
	}
	var names []string
	for _, s := range all {
		names = append(names, s.name)
	}
	return usagef("unknown command %q: the commands are %s", pos[0], strings.Join(names, ", "))
}

// writeManPages writes tcplab.1 and a tcplab-COMMAND.1 per command to dir.
func writeManPages(dir string, all []spec) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pages := map[string]string{"tcplab.1": manIndex(all)}
	for _, s := range all {
		pages["tcplab-"+s.name+".1"] = manPage(s)
	}
	for name, text := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// roff escapes text for a roff line: backslashes, hyphens (a minus, as in
// a flag, copied from the page as typed) and a leading dot or quote.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffProse turns help prose into roff: a blank line starts a paragraph,
// lines indented by two spaces are shown as they are (commands, examples).
func roffProse(text string) string {
	var b strings.Builder
	verbatim := false
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		indented := strings.HasPrefix(line, "  ")
		switch {
		case indented && !verbatim:
			b.WriteString(".PP\n.RS 4\n.nf\n")
			verbatim = true
		case !indented && verbatim:
			b.WriteString(".fi\n.RE\n")
			if strings.TrimSpace(line) != "" {
				b.WriteString(".PP\n")
			}
			verbatim = false
		}
		switch {
		case strings.TrimSpace(line) == "":
			if !verbatim {
				b.WriteString(".PP\n")
			}
		case verbatim:
			b.WriteString(roff(strings.TrimPrefix(line, "  ")) + "\n")
		default:
			b.WriteString(roff(line) + "\n")
		}
	}
	if verbatim {
		b.WriteString(".fi\n.RE\n")
	}
	return b.String()
}

const manExit = `.SH EXIT STATUS
.TP
0
done: what was asked was done
.TP
1
failed: one line on standard error says why
.TP
2
bad usage: the line names the flag or argument
.TP
130, 143
stopped by SIGINT (Ctrl\-C) or SIGTERM
.TP
141
a client's standard output was closed
`

func manHead(name, summary string) string {
	return fmt.Sprintf(".TH %s 1 \"\" \"tcplab\" \"tcplab manual\"\n.SH NAME\n%s \\- %s\n", strings.ToUpper(roff(name)), roff(name), roff(summary))
}

// manPage is the page of one command: its synopsis, help prose, flags
// and examples, as --help prints them.
func manPage(s spec) string {
	var b strings.Builder
	b.WriteString(manHead("tcplab-"+s.name, s.summary))
	fmt.Fprintf(&b, ".SH SYNOPSIS\n.B tcplab %s\n%s\n", roff(s.name), roff(s.fs.synopsis))
	b.WriteString(".SH DESCRIPTION\n" + roffProse(s.fs.about))
	if len(s.flags) > 0 {
		b.WriteString(".SH OPTIONS\n")
		for _, f := range s.flags {
			if f.arg == "" {
				fmt.Fprintf(&b, ".TP\n.B %s\n", roff("--"+f.name))
			} else {
				fmt.Fprintf(&b, ".TP\n.BI %s \" %s\"\n", roff("--"+f.name), roff(f.arg))
			}
			usage := f.usage
			if f.def != "" {
				usage += " (default " + f.def + ")"
			}
			b.WriteString(roff(usage) + "\n")
		}
	}
	if len(s.fs.examples) > 0 {
		b.WriteString(".SH EXAMPLES\n.RS 4\n.nf\n")
		for _, e := range s.fs.examples {
			b.WriteString(roff(e) + "\n")
		}
		b.WriteString(".fi\n.RE\n")
	}
	b.WriteString(manExit)
	b.WriteString(".SH SEE ALSO\n.BR tcplab (1)\n")
	return b.String()
}

// manIndex is tcplab(1): what tcplab is, its commands, and the exit
// statuses they share.
func manIndex(all []spec) string {
	var b strings.Builder
	b.WriteString(manHead("tcplab", `the "Network Programming with Python" tutorial, built in Go`))
	b.WriteString(".SH SYNOPSIS\n.B tcplab\nCOMMAND [flags] ARGS...\n.br\n.B tcplab\nhelp [COMMAND]\n.br\n.B tcplab\n\\-\\-version\n")
	b.WriteString(".SH DESCRIPTION\n" + roffProse(`The classic tutorial "Network Programming with Python" (N. Matloff), built
in Go: its three TCP client/server pairs, made production grade, and every
lesson of the tutorial runnable on real sockets. Start with tcplab demo.

Every command takes --help for its flags and examples; flags may come
before, between or after the arguments, and -- ends them.`))
	b.WriteString(".SH COMMANDS\n")
	for _, s := range all {
		fmt.Fprintf(&b, ".TP\n.BR tcplab\\-%s (1)\n%s\n", roff(s.name), roff(s.summary))
	}
	b.WriteString(manExit)
	b.WriteString(".SH FILES\n.TP\n/usr/lib/systemd/system/tcplab\\-svr.socket, tcplab\\-strsvr.socket\nsocket\\-activated, sandboxed units for svr and strsvr (installed by the Debian package, not enabled)\n")
	b.WriteString(".SH SEE ALSO\n")
	var refs []string
	for _, s := range all {
		refs = append(refs, fmt.Sprintf(".BR tcplab\\-%s (1)", roff(s.name)))
	}
	b.WriteString(strings.Join(refs, ",\n") + "\n")
	return b.String()
}
