//go:build unix

package testkit

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// reservePort claims port until tb's cleanup among all the processes on
// this machine that take ports from StaticPort (every package's test
// binary, other checkouts' too): an exclusive flock on a file named after
// the port in the temporary directory. It returns false if another test
// holds the port. Where the file cannot be made, there is no reservation
// and it returns true, as StaticPort did before it had one.
func reservePort(tb testing.TB, port int) bool {
	dir := filepath.Join(os.TempDir(), "tcplab-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	// The files stay (empty): removing a locked file would let two
	// processes lock two different files of the same name.
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	tb.Cleanup(func() { f.Close() }) // closing releases the lock
	return true
}
