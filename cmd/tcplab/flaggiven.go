package main

import "flag"

// flagGiven reports whether the flag called name was set on the command
// line (as opposed to left at its default).
func flagGiven(fs *flagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			given = true
		}
	})
	return given
}
