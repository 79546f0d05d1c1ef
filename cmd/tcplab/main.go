// Command tcplab is the classic tutorial "Network Programming with Python"
// (N. Matloff) built in Go: its three client/server pairs, production grade,
// and a tour of its lessons. Run "tcplab help" for the commands.
package main

import (
	"context"
	"os"
)

func main() {
	ctx, stop := notifySignals(context.Background())
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
