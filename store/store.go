// Package store keeps the shared string v of the tutorial's strsvr
// (section 6): every byte any client sends is appended to v, and the reply
// is v right after that append.
//
// Store is the one interface the server uses. Implementations: in memory
// (the default, as the tutorial's server), an append-only file that survives
// restarts, and Redis, which lets several strsvr processes share one v.
//
// Store and its implementations (here and in store/redisstore) are the API
// that package sharedstring programs against, and kept stable. The bytes
// of the data file are internal/datalog's; what only tests need of this
// package is in export_test.go.
package store

import (
	"context"
	"errors"
)

// ErrClosed is returned by a Store's methods after Close.
var ErrClosed = errors.New("store closed")

// ErrFull is returned by Capped.AppendCapped when p would grow v beyond the
// limit; none of p is stored.
var ErrFull = errors.New("v has reached its size limit")

// Capped is a Store whose appends can be bounded: AppendCapped is Append,
// except that it refuses (with ErrFull, storing nothing) a p that would
// make v longer than limit bytes. The check and the append are one atomic
// step, so concurrent appends can never together grow v past limit, which
// a check made before Append cannot promise. A limit of zero or less means
// no limit. Memory and File implement it.
type Capped interface {
	Store
	AppendCapped(ctx context.Context, p []byte, limit int) ([]byte, error)
}

// Generational is a Store that can lose v and begin it again: Redis, whose
// key can be deleted, flushed, lost in a restart without persistence, or
// rolled back by a failover to a replica that missed writes. AppendGen and
// ValueGen are Append and Value that also say which generation of v the
// answer belongs to. Within one generation v only grows, and every answer
// is a prefix of every later one; a different generation means v was
// reset, and what a client holds of an earlier one is not a prefix of it.
type Generational interface {
	Store
	AppendGen(ctx context.Context, p []byte) (v []byte, gen uint64, err error)
	ValueGen(ctx context.Context) (v []byte, gen uint64, err error)
}

// Checked is a Store that others can write behind its back (Redis: anyone
// may SET the key), so that what it served can differ from what it holds
// in ways it sees only by comparing all of it. CheckedValue is Value after
// that comparison: when they differ the store says so (a WARN, a new
// generation) and returns what it holds. It costs a pass over v; a server
// calls it once, for the final v.
type Checked interface {
	CheckedValue(ctx context.Context) ([]byte, error)
}

// Flusher is a Store that can wait for appends still in flight, even those
// whose caller stopped waiting: after Flush returns, and with no append
// running, Value is what the store keeps (what a restart recovers).
type Flusher interface {
	Flush(ctx context.Context) error
}

// Store holds v. Implementations are safe for concurrent use.
type Store interface {
	// Append appends p to v as one atomic step and returns v as it is right
	// after that append, so no other append can come between the two. Bytes
	// of one call stay together and in order. The returned slice must not be
	// modified by the caller; it stays valid after later appends. An error
	// means p may not be stored and must not be acknowledged to a client.
	Append(ctx context.Context, p []byte) ([]byte, error)

	// Value returns v now. The returned slice must not be modified.
	Value(ctx context.Context) ([]byte, error)

	// Changes returns a channel that receives a signal whenever v or the
	// group's client count may have changed since the last signal was taken.
	// Signals are coalesced: a slow receiver gets one signal for many
	// changes, never a backlog. The channel is closed when ctx ends or the
	// store is closed.
	Changes(ctx context.Context) (<-chan struct{}, error)

	// Join counts one more connected client in the group of servers that
	// share this store (for a store private to one server, the group is that
	// server). The returned leave function uncounts it; calling it more than
	// once has no further effect. A server that dies without calling leave
	// must not leave its clients counted for ever.
	Join(ctx context.Context) (leave func(), err error)

	// Clients reports how many clients are connected across the group.
	Clients(ctx context.Context) (int64, error)

	// Close releases the store's resources. A durable store flushes first.
	Close() error
}
