// Package notify hands out coalescing change signals: the Changes channels
// of every store.
package notify

import (
	"context"
	"sync"
)

// Notifier hands out change channels, each with room for one signal.
// Signal never blocks, so a slow subscriber finds one pending signal for
// any number of changes, never a backlog. The zero value is ready to use.
// Its lock guards the subscriber set, so that no signal is sent on a
// channel already closed.
type Notifier struct {
	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	closed bool
}

// Subscribe returns a channel that receives a signal after each Signal,
// coalesced, and is closed when ctx ends or at Close. It reports false
// after Close.
func (n *Notifier) Subscribe(ctx context.Context) (<-chan struct{}, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, false
	}
	if n.subs == nil {
		n.subs = make(map[chan struct{}]struct{})
	}
	ch := make(chan struct{}, 1)
	n.subs[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if _, ok := n.subs[ch]; ok {
			delete(n.subs, ch)
			close(ch)
		}
	})
	return ch, true
}

// Signal wakes every subscriber.
func (n *Notifier) Signal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Close closes every channel and refuses new subscribers.
func (n *Notifier) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for ch := range n.subs {
		delete(n.subs, ch)
		close(ch)
	}
}
