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
	m.notify.Signal()
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
