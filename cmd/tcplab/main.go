// Command tcplab is the classic tutorial "Network Programming with Python"
// (N. Matloff) built in Go: its three client/server pairs, production grade,
// and a tour of its lessons. Run "tcplab help" for the commands.
package main

import (
	"context"
	"os"
)

func main() {
	ctx, hurry, stop := notifySignals(context.Background())
	code := runStd(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, hurry: hurry})
	stop()
	os.Exit(code)
}
