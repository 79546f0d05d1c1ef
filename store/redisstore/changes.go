package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/store"
)

// Live updates across processes. Every script that changes v or a client
// count publishes on NAME:changes; each process holds one subscription and
// fans each message out to its watchers as a coalesced signal. A watcher on
// server A thus hears of a letter typed on server B one Redis hop later.

// pingEvery is how long the subscription may stay silent before it is
// pinged; a second silent period means the connection is dead (a peer that
// vanished without a reset) and it is replaced.
const pingEvery = 15 * time.Second

// Changes returns a channel that receives a signal after v or the group's
// client count may have changed, on any process of the group. After the
// subscription is lost and made again, watchers get a signal too, since
// messages may have been missed meanwhile.
func (s *Store) Changes(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	s.watchMu.Lock()
	if s.closed {
		s.watchMu.Unlock()
		return nil, store.ErrClosed
	}
	s.watchers[ch] = struct{}{}
	s.watchMu.Unlock()
	context.AfterFunc(ctx, func() {
		s.watchMu.Lock()
		defer s.watchMu.Unlock()
		if _, ok := s.watchers[ch]; ok {
			delete(s.watchers, ch)
			close(ch)
		}
	})
	return ch, nil
}

// signal wakes every watcher, without ever blocking on a slow one.
func (s *Store) signal() {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// listen holds the subscription, making it again with growing pauses when
// it is lost, until Close.
func (s *Store) listen() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		ps := s.client.Subscribe(s.ctx, s.chann)
		s.watchMu.Lock()
		if s.closed {
			s.watchMu.Unlock()
			ps.Close()
			return
		}
		s.ps = ps
		s.watchMu.Unlock()

		heard := s.receive(ps)
		s.subscribed.Store(false)
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
			// (Re)subscribed: Redis is there. Messages sent while the
			// subscription was down are lost, so forget what they would
			// have announced and wake the watchers to look again.
			s.recovered(time.Now())
			s.clientsGen.Add(1)
			s.subscribed.Store(true)
			s.signal()
		case *redis.Message:
			s.announced(m.Payload)
			s.signal()
		}
	}
}

// announced notes what a message says changed: "clients" for a count (the
// cached count is then stale), "EPOCH LENGTH" for v (Value always asks
// Redis, so there is nothing to note).
func (s *Store) announced(payload string) {
	if payload == "clients" {
		s.clientsGen.Add(1)
	}
}
