package testkit

import (
	"fmt"
	"syscall"
	"testing"
)

// SmallDisk mounts a tmpfs of size bytes on a fresh directory for the test
// and unmounts it at the end, for a real full disk (ENOSPC); it skips the
// test (one line) where mounting is not allowed.
func SmallDisk(tb testing.TB, size int) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := syscall.Mount("tcplab-test", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		tb.Skipf("cannot mount a tmpfs for a full disk (%v): needs root", err)
	}
	tb.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}
