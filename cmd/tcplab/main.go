// Command tcplab is the classic tutorial "Network Programming with Python"
// (N. Matloff) built in Go: its three client/server pairs, production grade,
// and a tour of its lessons. Run "tcplab help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
