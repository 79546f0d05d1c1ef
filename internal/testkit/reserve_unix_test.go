//go:build unix

package testkit

import "testing"

// A port StaticPort gave a test is not given again while that test runs,
// by this process or any other (the reservation is a file lock, which a
// second open file conflicts with as another process's would).
func TestStaticPortIsReserved(t *testing.T) {
	p := StaticPort(t)
	if reservePort(t, p) {
		t.Fatalf("port %d reserved twice", p)
	}
}
