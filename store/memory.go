package store

import (
	"context"
	"sync"
)

// Memory keeps v in this process only, as the tutorial's strsvr.py does:
// v is lost when the server exits. The zero value is not usable; call
// NewMemory.
//
// v lives in one append-only buffer. Append and Value return prefixes of
// that buffer, capped so that a caller cannot write past their end, so
// however many clients hold a reply there is one copy of v, not one per
// client. Bytes already handed out are never written again: a later append
// only writes past them, or moves to a larger buffer and leaves the old one
// to the garbage collector once no reply refers to it.
type Memory struct {
	localGroup
	mu     sync.Mutex
	buf    []byte
	closed bool
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{} }

// NewMemoryFrom returns an in-memory store whose v starts as initial (copied).
func NewMemoryFrom(initial []byte) *Memory {
	return &Memory{buf: append([]byte(nil), initial...)}
}

// Append implements Store.
func (m *Memory) Append(ctx context.Context, p []byte) ([]byte, error) {
	return m.AppendCapped(ctx, p, 0)
}

// AppendCapped implements Capped.
func (m *Memory) AppendCapped(_ context.Context, p []byte, limit int) ([]byte, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if limit > 0 && len(m.buf)+len(p) > limit {
		m.mu.Unlock()
		return nil, ErrFull
	}
	m.buf = append(m.buf, p...)
	v := m.buf[:len(m.buf):len(m.buf)]
	m.mu.Unlock()
	m.notify.signal()
	return v, nil
}

// Value implements Store.
func (m *Memory) Value(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.buf[:len(m.buf):len(m.buf)], nil
}

// Close implements Store. Slices already returned stay valid.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.closeGroup()
	return nil
}

// localGroup is Changes, Join and Clients for a store private to one
// server (Memory, File): the group is this server, its client count a
// counter, and its change signal a notifier that the store's appends fire
// too.
type localGroup struct {
	notify  notifier
	countMu sync.Mutex
	count   int64
	done    bool
}

// Changes implements Store.
func (g *localGroup) Changes(ctx context.Context) (<-chan struct{}, error) {
	return g.notify.subscribe(ctx)
}

// Join implements Store.
func (g *localGroup) Join(context.Context) (func(), error) {
	g.countMu.Lock()
	if g.done {
		g.countMu.Unlock()
		return nil, ErrClosed
	}
	g.count++
	g.countMu.Unlock()
	g.notify.signal()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.countMu.Lock()
			g.count--
			g.countMu.Unlock()
			g.notify.signal()
		})
	}, nil
}

// Clients implements Store.
func (g *localGroup) Clients(context.Context) (int64, error) {
	g.countMu.Lock()
	defer g.countMu.Unlock()
	if g.done {
		return 0, ErrClosed
	}
	return g.count, nil
}

// closeGroup refuses Join and Clients from now on and closes every Changes
// channel; the store's Close calls it.
func (g *localGroup) closeGroup() {
	g.countMu.Lock()
	g.done = true
	g.countMu.Unlock()
	g.notify.close()
}

// notifier hands out coalescing change channels: each subscriber has a
// channel with room for one signal, and signal never blocks, so a slow
// subscriber finds one pending signal for any number of changes.
type notifier struct {
	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	closed bool
}

func (n *notifier) subscribe(ctx context.Context) (<-chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
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
	return ch, nil
}

func (n *notifier) signal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (n *notifier) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for ch := range n.subs {
		delete(n.subs, ch)
		close(ch)
	}
}
