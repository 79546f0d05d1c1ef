//go:build !unix

package testkit

import "testing"

// reservePort has no cross-process reservation here (see reserve_unix.go).
func reservePort(tb testing.TB, port int) bool { return true }
