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

// writeBash writes a bash completion function. It reads only COMP_LINE,
// COMP_POINT, COMP_WORDS and COMP_CWORD, so it works without the
// bash-completion package: it joins back the words bash splits at "="
// and ":" (COMP_WORDBREAKS), "--flag=value" and "host:port", as tcplab
// sees them.
func writeBash(w io.Writer, specs []spec) {
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
	}
	fmt.Fprintf(w, `# bash completion for tcplab, made by "tcplab completion bash" from its flags.
_tcplab() {
	# The words as tcplab sees them: a word of COMP_WORDS that touches the
	# one before it in the line (no blank between: bash split them at "="
	# or ":") is joined to it.
	local -a words=()
	local line="${COMP_LINE:0:COMP_POINT}" rest i
	for ((i = 0; i <= COMP_CWORD; i++)); do
		rest="${line#"${line%%%%[![:blank:]]*}"}"
		if ((i > 0 && ${#rest} == ${#line})) && [[ -n $COMP_LINE ]]; then
			words[-1]+="${COMP_WORDS[i]}"
		else
			words+=("${COMP_WORDS[i]}")
		fi
		line="${rest#"${COMP_WORDS[i]}"}"
	done
	local cword=$((${#words[@]} - 1))
	local cur="${words[cword]}" prev="" flag="" value=""
	COMPREPLY=()
	if ((cword == 1)); then
		COMPREPLY=($(compgen -W %s -- "$cur"))
		return 0
	fi
	local cmd="${words[1]}" flags="" valued="" alt=""
	case "$cmd" in
`, quoteSingle(shellWords(append(names, "help", "--help", "--version", "-V"))))
	for _, s := range specs {
		alt := ""
		if s.alt != nil {
			alt = " alt=" + quoteSingle(s.alt.flag)
		}
		fmt.Fprintf(w, "\t%s) flags=%s valued=%s%s ;;\n", s.name, quoteSingle(shellWords(s.flagNames())), quoteSingle(shellWords(s.valued())), alt)
	}
	fmt.Fprint(w, `	help) ;;
	*) return 0 ;;
	esac
	prev="${words[cword-1]}"
	# The value of a flag: after "--flag=" or "--flag".
	if [[ $cur == -*=* ]]; then
		flag="${cur%%=*}" value="${cur#*=}"
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
		_tcplab_trim "$value"
		return 0
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return 0
	fi
	# A positional argument: count those before it, skipping the flags
	# and their values. The flag of the synopsis's other form ($alt)
	# selects that form's arguments.
	local n=0 j w name form="$cmd"
	for ((j = 2; j < cword; j++)); do
		w="${words[j]}"
		if [[ $w == -- ]]; then
			((n += cword - j - 1))
			break
		elif [[ $w == -* ]]; then
			name="--${w#"${w%%[!-]*}"}"
			[[ -n $alt && ${name%%=*} == "$alt" ]] && form="$cmd $alt"
			# A flag's value is the next word, unless given with "=".
			if [[ $w != *=* && " $valued " == *" $name "* ]]; then
				((j++))
			fi
		else
			((n++))
		fi
	done
	local value="$cur"
	case "$form $n" in
	'help 0') COMPREPLY=($(compgen -W `+quoteSingle(shellWords(names))+` -- "$cur")) ;;
`)
	for _, s := range specs {
		writeBashArgs(w, s.name, s.args)
		if s.alt != nil {
			writeBashArgs(w, s.name+" "+s.alt.flag, s.alt.args)
		}
	}
	fmt.Fprint(w, `	esac
	_tcplab_trim "$value"
	return 0
}
# Readline replaces only the text after the last "=" or ":" of the word
# being completed: drop what comes before it from each candidate.
_tcplab_trim() {
	local keep="${1%"${1##*[=:]}"}"
	[[ -n $keep ]] && COMPREPLY=("${COMPREPLY[@]#"$keep"}")
	return 0
}
complete -F _tcplab tcplab
`)
}

// writeBashArgs writes the case patterns that complete the arguments of
// a form ("tmc", or "wps --hosts" for the form that flag selects).
func writeBashArgs(w io.Writer, form string, args []argInfo) {
	for i, a := range args {
		line := bashValues(a.kind, a.choices)
		if line == "" {
			continue
		}
		pattern := quoteSingle(fmt.Sprintf("%s %d", form, i))
		if a.many {
			pattern = quoteSingle(form+" ") + "*"
		}
		fmt.Fprintf(w, "\t%s) %s ;;\n", pattern, line)
	}
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
		fmt.Fprintf(w, "\t%s)\n", s.name)
		if s.alt == nil {
			writeZshArguments(w, "\t\t", s.flags, s.args)
		} else {
			// The other form's flag, given as --flag, -flag or
			// --flag=..., selects its arguments.
			name := strings.TrimPrefix(s.alt.flag, "--")
			fmt.Fprintf(w, "\t\tif ((${words[(I)(-|--)%s(|=*)]})); then\n", name)
			writeZshArguments(w, "\t\t\t", s.flags, s.alt.args)
			fmt.Fprint(w, "\t\telse\n")
			writeZshArguments(w, "\t\t\t", s.flags, s.args)
			fmt.Fprint(w, "\t\tfi\n")
		}
		fmt.Fprint(w, "\t\t;;\n")
	}
	fmt.Fprint(w, `	esac
}
_tcplab "$@"
`)
}

// writeZshArguments writes one _arguments call: the flags, then the
// arguments, each line starting with indent.
func writeZshArguments(w io.Writer, indent string, flags []flagInfo, args []argInfo) {
	fmt.Fprintf(w, "%s_arguments -s -S \\\n", indent)
	for _, f := range flags {
		if f.kind == noValue {
			fmt.Fprintf(w, "%s\t'--%s[%s]' \\\n", indent, f.name, zshEscape(shortUsage(f.usage)))
			continue
		}
		fmt.Fprintf(w, "%s\t'--%s=[%s]:%s:%s' \\\n", indent, f.name, zshEscape(shortUsage(f.usage)), zshEscape(f.arg), zshEscape(zshAction(f.kind, f.choices)))
	}
	for i, a := range args {
		pos := fmt.Sprint(i + 1)
		if a.many {
			pos = "*"
		}
		fmt.Fprintf(w, "%s\t'%s:%s:%s' \\\n", indent, pos, zshEscape(a.name), zshEscape(zshAction(a.kind, a.choices)))
	}
	fmt.Fprintf(w, "%s\t'(- *)--help[show the flags and examples]'\n", indent)
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
