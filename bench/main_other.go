//go:build !linux

// The benchmarks measure Linux's loopback, /proc and epoll: elsewhere the
// command says so and exits.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench: the benchmarks run on Linux only (they read /proc and use epoll)")
	os.Exit(1)
}
