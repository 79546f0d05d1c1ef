package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

func runCompletion(ctx context.Context, std stdio, args []string) error {
	fs := newFlagSet("completion")
	pos, err := fs.parse(std, args, 1, 1)
	if err != nil {
		return err
	}
	var b strings.Builder
	switch pos[0] {
	case "bash":
		writeBash(&b, specs())
	case "zsh":
		writeZsh(&b, specs())
	case "fish":
		writeFish(&b, specs())
	default:
		return usagef("unknown shell %q: the shells are %s", pos[0], strings.Join(shells, ", "))
	}
	_, err = io.WriteString(std.out, b.String())
	return err
}

// shellWords is words joined by spaces, for a word list in a script (the
// words are flag names and fixed values: no quoting needed; checked in
// the tests).
func shellWords(words []string) string { return strings.Join(words, " ") }

// quoteSingle quotes s for sh between single quotes.
func quoteSingle(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeBash writes a bash completion function. It reads only COMP_WORDS
// and COMP_CWORD, so it works without the bash-completion package (and
// with COMP_WORDBREAKS splitting "--flag=value" at "=").
func writeBash(w io.Writer, specs []spec) {
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
	}
	fmt.Fprintf(w, `# bash completion for tcplab, made by "tcplab completion bash" from its flags.
_tcplab() {
	local cur="${COMP_WORDS[COMP_CWORD]}" prev="" flag="" value=""
	COMPREPLY=()
	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W %s -- "$cur"))
		return 0
	fi
	local cmd="${COMP_WORDS[1]}" flags="" valued=""
	case "$cmd" in
`, quoteSingle(shellWords(append(names, "help", "--help", "--version", "-V"))))
	for _, s := range specs {
		fmt.Fprintf(w, "\t%s) flags=%s valued=%s ;;\n", s.name, quoteSingle(shellWords(s.flagNames())), quoteSingle(shellWords(s.valued())))
	}
	fmt.Fprint(w, `	help) ;;
	*) return 0 ;;
	esac
	((COMP_CWORD > 1)) && prev="${COMP_WORDS[COMP_CWORD-1]}"
	# The value of a flag: after "--flag", "--flag=" or "--flag =".
	if [[ $cur == --*=* ]]; then
		flag="${cur%%=*}" value="${cur#*=}"
	elif [[ $cur == = && $prev == -* ]]; then
		flag="$prev"
	elif [[ $prev == = ]] && ((COMP_CWORD > 2)); then
		flag="${COMP_WORDS[COMP_CWORD-2]}" value="$cur"
	elif [[ $prev == -* && " $valued " == *" --${prev#"${prev%%[!-]*}"} "* ]]; then
		flag="$prev" value="$cur"
	fi
	if [[ -n $flag ]]; then
		flag="--${flag#"${flag%%[!-]*}"}"
		case "$cmd $flag" in
`)
	for _, s := range specs {
		for _, f := range s.flags {
			if line := bashValues(f.kind, f.choices); line != "" {
				fmt.Fprintf(w, "\t\t%s) %s ;;\n", quoteSingle(s.name+" --"+f.name), line)
			}
		}
	}
	fmt.Fprint(w, `		esac
		return 0
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return 0
	fi
	# A positional argument: count those before it, skipping the flags
	# and their values.
	local n=0 j w
	for ((j = 2; j < COMP_CWORD; j++)); do
		w="${COMP_WORDS[j]}"
		if [[ $w == -- ]]; then
			((n += COMP_CWORD - j - 1))
			break
		elif [[ $w == = ]]; then
			((j++))
		elif [[ $w == -* ]]; then
			[[ $w != *=* && " $valued " == *" --${w#"${w%%[!-]*}"} "* ]] && ((j++))
		else
			((n++))
		fi
	done
	local value="$cur"
	case "$cmd $n" in
	'help 0') COMPREPLY=($(compgen -W `+quoteSingle(shellWords(names))+` -- "$cur")) ;;
`)
	for _, s := range specs {
		for i, a := range s.args {
			line := bashValues(a.kind, a.choices)
			if line == "" {
				continue
			}
			pattern := quoteSingle(fmt.Sprintf("%s %d", s.name, i))
			if a.many {
				pattern = quoteSingle(s.name+" ") + "*"
			}
			fmt.Fprintf(w, "\t%s) %s ;;\n", pattern, line)
		}
	}
	fmt.Fprint(w, `	esac
	return 0
}
complete -F _tcplab tcplab
`)
}

// bashValues is the bash that completes $value of a kind, or "" if there
// is nothing to offer.
func bashValues(kind valueKind, choices []string) string {
	switch kind {
	case setValue:
		return `COMPREPLY=($(compgen -W ` + quoteSingle(shellWords(choices)) + ` -- "$value"))`
	case fileValue:
		return `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$value"))`
	case dirValue:
		return `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$value"))`
	case hostValue:
		return `COMPREPLY=($(compgen -A hostname -- "$value"))`
	}
	return ""
}

// zshEscape escapes a description for an _arguments spec between single
// quotes: brackets and colons are special there.
func zshEscape(s string) string {
	s = strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
	return strings.ReplaceAll(s, "'", `'\''`)
}

// shortUsage is a flag's usage cut to its first clause, for a menu line.
func shortUsage(s string) string {
	if i := strings.IndexAny(s, ";("); i > 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// zshAction is the _arguments action that completes a value of a kind.
func zshAction(kind valueKind, choices []string) string {
	switch kind {
	case setValue:
		return "(" + strings.Join(choices, " ") + ")"
	case fileValue:
		return "_files"
	case dirValue:
		return "_files -/"
	case hostValue:
		return "_hosts"
	}
	return " "
}

// writeZsh writes a zsh completion function (#compdef), with _arguments
// for each command.
func writeZsh(w io.Writer, specs []spec) {
	fmt.Fprint(w, `#compdef tcplab
# zsh completion for tcplab, made by "tcplab completion zsh" from its flags.
_tcplab() {
	local -a commands
	commands=(
`)
	for _, s := range specs {
		fmt.Fprintf(w, "\t\t'%s:%s'\n", s.name, zshEscape(s.summary))
	}
	fmt.Fprint(w, `		'help:the commands, or a command'\''s flags'
	)
	if ((CURRENT == 2)); then
		_describe -t commands 'tcplab command' commands
		return
	fi
	local cmd=$words[2]
	shift words
	((CURRENT--))
	case $cmd in
	help) _describe -t commands 'tcplab command' commands ;;
`)
	for _, s := range specs {
		fmt.Fprintf(w, "\t%s)\n\t\t_arguments -s -S \\\n", s.name)
		for _, f := range s.flags {
			if f.kind == noValue {
				fmt.Fprintf(w, "\t\t\t'--%s[%s]' \\\n", f.name, zshEscape(shortUsage(f.usage)))
				continue
			}
			fmt.Fprintf(w, "\t\t\t'--%s=[%s]:%s:%s' \\\n", f.name, zshEscape(shortUsage(f.usage)), zshEscape(f.arg), zshEscape(zshAction(f.kind, f.choices)))
		}
		for i, a := range s.args {
			pos := fmt.Sprint(i + 1)
			if a.many {
				pos = "*"
			}
			fmt.Fprintf(w, "\t\t\t'%s:%s:%s' \\\n", pos, zshEscape(a.name), zshEscape(zshAction(a.kind, a.choices)))
		}
		fmt.Fprint(w, "\t\t\t'(- *)--help[show the flags and examples]'\n\t\t;;\n")
	}
	fmt.Fprint(w, `	esac
}
_tcplab "$@"
`)
}

// fishQuote quotes s for fish between single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// writeFish writes fish "complete" commands.
func writeFish(w io.Writer, specs []spec) {
	fmt.Fprint(w, "# fish completion for tcplab, made by \"tcplab completion fish\" from its flags.\ncomplete -c tcplab -f\n")
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
		fmt.Fprintf(w, "complete -c tcplab -n __fish_use_subcommand -a %s -d %s\n", s.name, fishQuote(s.summary))
	}
	fmt.Fprintf(w, "complete -c tcplab -n __fish_use_subcommand -a help -d %s\n", fishQuote("the commands, or a command's flags"))
	fmt.Fprintf(w, "complete -c tcplab -n '__fish_seen_subcommand_from help' -a %s\n", fishQuote(shellWords(names)))
	for _, s := range specs {
		cond := fishQuote("__fish_seen_subcommand_from " + s.name)
		for _, f := range s.flags {
			line := fmt.Sprintf("complete -c tcplab -n %s -l %s", cond, f.name)
			switch f.kind {
			case noValue:
			case setValue:
				line += " -x -a " + fishQuote(shellWords(f.choices))
			case fileValue, dirValue:
				line += " -r -F"
			case hostValue:
				line += " -x -a '(__fish_print_hostnames)'"
			default:
				line += " -x"
			}
			fmt.Fprintf(w, "%s -d %s\n", line, fishQuote(shortUsage(f.usage)))
		}
		var choices []string
		hosts := false
		for _, a := range s.args {
			switch a.kind {
			case setValue:
				choices = append(choices, a.choices...)
			case hostValue:
				hosts = true
			}
		}
		if hosts {
			fmt.Fprintf(w, "complete -c tcplab -n %s -a '(__fish_print_hostnames)'\n", cond)
		}
		if len(choices) > 0 {
			slices.Sort(choices)
			fmt.Fprintf(w, "complete -c tcplab -n %s -a %s\n", cond, fishQuote(shellWords(slices.Compact(choices))))
		}
	}
}
