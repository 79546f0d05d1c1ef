//go:build !linux

package server

// newReadySet: no readiness set here; Park always reports false, and
// handlers wait for their clients in Read.
func newReadySet() readySet { return nil }

func readableNow(int) bool { return false }
