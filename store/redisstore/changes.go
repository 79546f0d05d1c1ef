package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/store"
	"github.com/tcplab/tcplab/store/internal/notify"
)

// Live updates across processes. Every script that changes v or a client
// count publishes on NAME:changes; each process holds one subscription and
// fans each message out to its watchers as a coalesced signal. A watcher on
// server A thus hears of a letter typed on server B one Redis hop later.

// pingEvery is how long the subscription may stay silent before it is
// pinged; a second silent period means the connection is dead (a peer that
// vanished without a reset) and it is replaced.
const pingEvery = 15 * time.Second

// feed is the change feed of one process: the subscription listen holds,
// fanned out to the watchers' channels. Its lock guards the subscription,
// so that after stop none is left open.
type feed struct {
	watchers notify.Notifier

	mu     sync.Mutex
	ps     *redis.PubSub
	closed bool
}

// Changes returns a channel that receives a signal after v or the group's
// client count may have changed, on any process of the group. After the
// subscription is lost and made again, watchers get a signal too, since
// messages may have been missed meanwhile.
func (s *Store) Changes(ctx context.Context) (<-chan struct{}, error) {
	if s.ctx.Err() != nil {
		return nil, store.ErrClosed
	}
	ch, ok := s.feed.watchers.Subscribe(ctx)
	if !ok {
		return nil, store.ErrClosed
	}
	return ch, nil
}

// hold records ps as the subscription to end at stop; after stop it
// reports false and the caller closes ps itself.
func (f *feed) hold(ps *redis.PubSub) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.ps = ps
	return true
}

// stop returns the subscription to close; no other is held after it.
func (f *feed) stop() *redis.PubSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return f.ps
}

// listen holds the subscription, making it again with growing pauses when
// it is lost, until Close.
func (s *Store) listen() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		ps := s.client.Subscribe(s.ctx, s.names.channel)
		if !s.feed.hold(ps) {
			ps.Close()
			return
		}

		heard := s.receive(ps)
		s.count.subscribed.Store(false)
		ps.Close()
		if s.ctx.Err() != nil {
			return
		}
		if heard {
			backoff = 0
		}
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return
		}
	}
}

// receive reads the subscription until it fails, and reports whether it
// heard anything at all (so a working connection resets the backoff).
func (s *Store) receive(ps *redis.PubSub) (heard bool) {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(s.ctx, pingEvery)
		if err != nil {
			if endpoint.IsTimeout(err) && !pinged && s.ctx.Err() == nil {
				pinged = true
				if ps.Ping(s.ctx) == nil {
					continue
				}
			}
			// A lost subscription is usually Redis lost: say so now
			// rather than at the next append.
			s.failed(err)
			return heard
		}
		heard, pinged = true, false
		switch m := msg.(type) {
		case *redis.Subscription:
			// (Re)subscribed. Messages sent while the subscription was
			// down are lost, so forget what they would have announced
			// and wake the watchers to look again. That is no sign
			// that Redis can serve: it answers SUBSCRIBE while still
			// loading its data, and -LOADING to everything else. The
			// keeper's probe, a write, tells.
			if s.health.err() != nil {
				s.probeNow()
			}
			s.count.invalidate()
			s.count.subscribed.Store(true)
			s.feed.watchers.Signal()
		case *redis.Message:
			s.announced(m.Payload)
			s.feed.watchers.Signal()
		}
	}
}

// announced notes what a message says changed: "clients" for a count (the
// cached count is then stale), "EPOCH LENGTH" for v (Value always asks
// Redis, so there is nothing to note).
func (s *Store) announced(payload string) {
	if payload == "clients" {
		s.count.invalidate()
	}
}
