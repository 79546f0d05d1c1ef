package store

import (
	"context"
	"sync"

	"github.com/tcplab/tcplab/store/internal/notify"
)

// localGroup is Changes, Join and Clients for a store private to one
// server (Memory, File): the group is this server, its client count a
// counter, and its change signal a notifier that the store's appends fire
// too. mu guards the count and done, which Join and Clients read together.
type localGroup struct {
	notify notify.Notifier
	mu     sync.Mutex
	count  int64
	done   bool
}

// Changes implements Store.
func (g *localGroup) Changes(ctx context.Context) (<-chan struct{}, error) {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	if done {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, ok := g.notify.Subscribe(ctx)
	if !ok {
		return nil, ErrClosed
	}
	return ch, nil
}

// Join implements Store.
func (g *localGroup) Join(context.Context) (func(), error) {
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	g.count++
	g.mu.Unlock()
	g.notify.Signal()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.count--
			g.mu.Unlock()
			g.notify.Signal()
		})
	}, nil
}

// Clients implements Store.
func (g *localGroup) Clients(context.Context) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return 0, ErrClosed
	}
	return g.count, nil
}

// closeGroup refuses Join and Clients from now on and closes every Changes
// channel; the store's Close calls it.
func (g *localGroup) closeGroup() {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
	g.notify.Close()
}
