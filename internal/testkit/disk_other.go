//go:build !linux

package testkit

import "testing"

// SmallDisk skips the test: a small disk of its own is a tmpfs mount,
// which only Linux offers here.
func SmallDisk(tb testing.TB, size int) string {
	tb.Helper()
	tb.Skip("a small tmpfs disk needs Linux")
	return ""
}
