package notify

import (
	"context"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Many signals to a subscriber that does not read leave one pending, never
// block the signaller, and the channel closes when its context ends.
func TestCoalesceAndContext(t *testing.T) {
	var n Notifier
	ctx, cancel := context.WithCancel(context.Background())
	ch, ok := n.Subscribe(ctx)
	if !ok {
		t.Fatal("Subscribe refused before Close")
	}
	for range 100 {
		n.Signal()
	}
	<-ch
	select {
	case <-ch:
		t.Fatal("a second signal pending: signals were not coalesced")
	default:
	}
	cancel()
	if _, open := <-ch; open {
		t.Fatal("a signal, not the close, after the context ended")
	}
	n.Signal() // no send on the closed channel
}

// Close closes every channel and refuses new subscribers.
func TestClose(t *testing.T) {
	var n Notifier
	ch, _ := n.Subscribe(t.Context())
	n.Close()
	if _, open := <-ch; open {
		t.Fatal("channel still open after Close")
	}
	if _, ok := n.Subscribe(t.Context()); ok {
		t.Fatal("Subscribe accepted after Close")
	}
	n.Signal()
}
