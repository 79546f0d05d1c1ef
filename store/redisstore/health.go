package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/store"
)

// health is whether Redis can be reached. Every operation reports its
// outcome (failed, recovered) and asks before it starts (usable), so that
// while Redis is away operations fail at once instead of each waiting out
// a timeout, and the loss and the return are logged once each. Its lock
// guards the state below, which changes together.
type health struct {
	mu      sync.Mutex
	downErr error         // non-nil while Redis is unreachable
	downAt  time.Time     // when downErr was set
	up      chan struct{} // closed while Redis is reachable
	upSince time.Time     // when Redis came back after an outage
	kick    chan struct{} // wakes the keeper to probe now (never blocks)
}

func newHealth() health {
	up := make(chan struct{})
	close(up)
	return health{up: up, kick: make(chan struct{}, 1)}
}

// err returns why Redis cannot be reached, or nil.
func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downErr
}

// upChan returns a channel closed once Redis is reachable.
func (h *health) upChan() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up
}

// since returns when Redis came back after its last outage (zero: never
// lost).
func (h *health) since() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.upSince
}

// lost puts Redis in the unreachable state for cause, and reports whether
// it was reachable until now.
func (h *health) lost(cause error) (first bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	first = h.downErr == nil
	h.downErr = cause
	if first {
		h.up = make(chan struct{})
		h.downAt = time.Now()
	}
	return first
}

// back ends the unreachable state on the success of an operation sent at
// sent, and reports whether it did. One sent before the state began proves
// nothing: its reply can still be read after another connection to a Redis
// being killed saw end of file, and taking it for a recovery made the log
// flap between "lost" and "reachable again".
func (h *health) back(sent time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downErr == nil || sent.Before(h.downAt) {
		return false
	}
	h.downErr = nil
	close(h.up)
	h.upSince = time.Now()
	return true
}

// connLost reports whether err means Redis could not be reached (as opposed
// to Redis answering with an error, or the caller giving up).
func connLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, store.ErrClosed) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// A reply: Redis is there, unless it is still loading its data.
		return strings.HasPrefix(rerr.Error(), "LOADING") || strings.HasPrefix(rerr.Error(), "MASTERDOWN")
	}
	return true
}

// cause says in a few words why Redis cannot be reached.
func cause(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return errors.New("connection lost")
	case endpoint.IsTimeout(err):
		return errors.New("timed out")
	}
	return endpoint.Cause(err)
}

// usable returns the error an operation must fail with now, if any.
func (s *Store) usable() error {
	if s.ctx.Err() != nil {
		return store.ErrClosed
	}
	if err := s.health.err(); err != nil {
		return fmt.Errorf("redis %s %w (%v); retrying", s.addr, ErrUnavailable, err)
	}
	return nil
}

// awaitUsable is usable for reads: while Redis is away it waits for it to
// come back, up to limit (0: as long as ctx lasts), so a restart of Redis is
// a pause for Value and Clients rather than an error.
func (s *Store) awaitUsable(ctx context.Context, limit time.Duration) error {
	err := s.usable()
	if !errors.Is(err, ErrUnavailable) {
		return err
	}
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-s.health.upChan():
	case <-expired:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
	}
	return s.usable()
}

// failed records the outcome of an operation: a lost connection puts the
// store in the unavailable state (logged once) and wakes the keeper and
// the watchers.
func (s *Store) failed(err error) {
	if !connLost(err) || s.ctx.Err() != nil {
		return
	}
	if s.health.lost(cause(err)) {
		s.log.Error("redis lost; refusing appends and retrying with backoff", "redis", s.addr, "err", s.wrap("", err))
		s.probeNow()
		// The watchers' source of changes is gone too: they look, and
		// a watcher that cannot read v for long is told so rather than
		// left silent on a v that other servers may be changing.
		s.feed.watchers.Signal()
	}
}

// probeNow wakes the keeper to probe Redis at once.
func (s *Store) probeNow() {
	select {
	case s.health.kick <- struct{}{}:
	default:
	}
}

// recovered records the success of an operation sent at sent. When it ends
// an outage, the watchers are woken to look again: letters may have come
// (through other servers) while this one could not hear of them.
func (s *Store) recovered(sent time.Time) {
	if s.health.back(sent) {
		s.log.Info("redis reachable again", "redis", s.addr)
		s.feed.watchers.Signal()
	}
}
