package testkit

import (
	"testing"
	"time"
)

// Wait returns once another goroutine's Adds bring the gauge to the
// value, and reports false when they never do.
func TestGaugeWait(t *testing.T) {
	var g Gauge
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			g.Add(1)
		}
		<-release
		g.Add(-1)
	}()
	if !g.Wait(10*time.Second, func(n int) bool { return n == 3 }) {
		t.Fatalf("gauge at %d, want 3", g.Load())
	}
	close(release)
	if !g.Wait(10*time.Second, func(n int) bool { return n == 2 }) {
		t.Fatalf("gauge at %d, want 2", g.Load())
	}
	<-done
	if g.Wait(10*time.Millisecond, func(n int) bool { return n == 3 }) {
		t.Fatal("Wait reported 3 for a gauge at 2")
	}
}
