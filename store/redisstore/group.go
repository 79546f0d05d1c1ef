package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The group's client count. Each strsvr process holds a lease in Redis: a
// member of NAME:servers scored by when it expires, and its own count of
// clients in NAME:clients. The process refreshes the lease every third of
// its length; a process that dies stops refreshing, and its clients stop
// counting once the lease runs out. Nothing is a shared counter that a dead
// process could leave too high.
//
// Updates carry the process's absolute count and a version, so they can
// arrive in any order (or be lost while Redis is away): Redis keeps the
// highest version, and the next heartbeat repairs whatever was missed.

// leaseScript sets this process's count and renews its lease, removes the
// leases of processes that stopped renewing, and publishes a change if the
// group's count moved. ARGV: channel, id, version, count (-1: leave the
// group), lease in ms.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ver, count, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local function countOf(entry)
  if not entry then return 0 end
  return tonumber(string.match(entry, ':(%d+)$')) or 0
end
local changed = false
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if dead ~= id then
    if countOf(redis.call('HGET', KEYS[2], dead)) ~= 0 then changed = true end
    redis.call('HDEL', KEYS[2], dead)
    redis.call('ZREM', KEYS[1], dead)
  end
end
local cur = redis.call('HGET', KEYS[2], id)
local curVer = -1
local curCount = countOf(cur)
if cur then curVer = tonumber(string.match(cur, '^(%d+)')) or -1 end
local score = redis.call('ZSCORE', KEYS[1], id)
if (not score) or tonumber(score) <= now then curCount = 0 end
if count < 0 then
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  if curCount ~= 0 then changed = true end
else
  if ver >= curVer then
    redis.call('HSET', KEYS[2], id, ARGV[3] .. ':' .. ARGV[4])
    if count ~= curCount then changed = true end
  end
  redis.call('ZADD', KEYS[1], now + lease, id)
end
if changed then redis.call('PUBLISH', ARGV[1], 'clients') end
return 1
`)

// clientsScript sums the counts of the processes whose lease is running.
var clientsScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sum = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local entry = redis.call('HGET', KEYS[2], id)
  if entry then sum = sum + (tonumber(string.match(entry, ':(%d+)$')) or 0) end
end
return sum
`)

// pushLease runs leaseScript with this process's count.
func (s *Store) pushLease(ctx context.Context, version, count int64) error {
	err := leaseScript.Run(ctx, s.client, s.names.group, s.names.channel, s.id, version, count, s.lease.Milliseconds()).Err()
	if err != nil {
		s.failed(err)
		return s.wrap("lease", err)
	}
	return nil
}

// Join counts one more client of this process in the group.
func (s *Store) Join(ctx context.Context) (leave func(), err error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	v, c := s.changeCount(+1)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := s.pushLease(ctx, v, c); err != nil {
		// Not counted after all; the next heartbeat tells Redis so if this
		// update did land.
		s.changeCount(-1)
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			v, c := s.changeCount(-1)
			if s.usable() != nil {
				return // the keeper sends the count when Redis is back
			}
			ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
			defer cancel()
			if err := s.pushLease(ctx, v, c); err != nil {
				s.log.Warn("leave not recorded yet; the next heartbeat will", "redis", s.addr, "err", err)
			}
		})
	}, nil
}

// changeCount changes this process's count of joined clients by delta.
func (s *Store) changeCount(delta int64) (version, count int64) {
	s.count.invalidate() // our own change: read the count again
	return s.members.change(delta)
}

// membership is this process's part of the group: how many of its clients
// are joined, and a version bumped on every change. Lease updates carry
// both and Redis keeps the highest version, so updates sent from several
// goroutines may land in any order. The lock makes a change and its
// version one step.
type membership struct {
	mu      sync.Mutex
	version int64
	count   int64
}

func (m *membership) change(delta int64) (version, count int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count += delta
	m.version++
	return m.version, m.count
}

// leave returns the version of an update that takes this process out of
// the group.
func (m *membership) leave() (version int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.version++
	return m.version
}

// now returns the latest version and count, for a heartbeat.
func (m *membership) now() (version, count int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version, m.count
}

// countCache is the group's client count as last read from Redis. Every
// change of a count is published, so a count read stays good until a
// "clients" message arrives: stale is bumped by each such message, by this
// process's own changes and by every (re)subscription, and a count read
// under an older stale value is not used; nor is one read while the
// subscription is down (subscribed), which would miss those messages.
// Both are atomics because the subscription's goroutine sets them on every
// message; mu guards the count itself.
type countCache struct {
	subscribed atomic.Bool
	stale      atomic.Uint64

	mu  sync.Mutex
	ok  bool
	gen uint64 // the stale value the count was read under
	at  time.Time
	n   int64
}

func (c *countCache) invalidate() { c.stale.Add(1) }

// get returns the count if it is still good and younger than maxAge, and
// the stale value to put a fresh count under.
func (c *countCache) get(maxAge time.Duration) (n int64, gen uint64, ok bool) {
	gen = c.stale.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && c.gen == gen && c.subscribed.Load() && time.Since(c.at) < maxAge {
		return c.n, gen, true
	}
	return 0, gen, false
}

func (c *countCache) put(gen uint64, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok, c.gen, c.at, c.n = true, gen, time.Now(), n
}

// Clients returns the number of clients connected to every process of the
// group whose lease is running. Every change of a count is published, so
// the last count read stays good until a "clients" message arrives; it is
// read again anyway after a third of a lease, when a dead process's lease
// may have run out unannounced. A change made by another process is thus
// seen one pub/sub message later, just before Changes signals it; this
// process's own Join and leave are seen at once.
//
// While Redis is unreachable, Clients waits for it as long as ctx lasts:
// the count is unknown, and a server waiting for its group to empty must
// keep waiting (and serving once Redis is back), not give up.
func (s *Store) Clients(ctx context.Context) (int64, error) {
	for {
		if err := s.awaitUsable(ctx, 0); err != nil {
			return 0, err
		}
		n, err := s.clients(ctx)
		if err == nil && n == 0 {
			if wait := s.regrouping(); wait > 0 {
				// Redis just came back: leases may have run out during
				// the outage (or been lost with Redis) while their
				// servers still have clients. Every live server renews
				// within a probe period; an empty group before that is
				// not to be trusted.
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return 0, ctx.Err()
				}
				s.count.invalidate()
				continue
			}
		}
		if err == nil || !connLost(err) || ctx.Err() != nil {
			return n, err
		}
		// Lost on the way: failed has marked Redis unavailable, so the
		// next round waits for it. Reading again is safe.
	}
}

// regrouping returns how much longer, after an outage, every live server may
// still be renewing its lease.
func (s *Store) regrouping() time.Duration {
	since := s.health.since()
	if since.IsZero() {
		return 0
	}
	// Other servers may use other leases: allow the longest probe pause.
	grace := maxBackoff + 500*time.Millisecond
	return time.Until(since.Add(grace))
}

func (s *Store) clients(ctx context.Context) (int64, error) {
	n, gen, ok := s.count.get(s.lease / 3)
	if ok {
		return n, nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := clientsScript.Run(ctx, s.client, s.names.group).Int64()
	if err != nil {
		s.failed(err)
		return 0, s.wrap("clients", err)
	}
	s.count.put(gen, n)
	return n, nil
}

// keeper renews this process's lease every third of its length and, while
// Redis is unreachable, probes it with growing pauses; its first success
// ends the unavailable state.
func (s *Store) keeper() {
	defer s.wg.Done()
	every := s.lease / 3
	t := time.NewTimer(0)
	defer t.Stop()
	var backoff time.Duration
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.health.kick:
		}
		v, c := s.members.now()
		ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
		sent := time.Now()
		err := s.pushLease(ctx, v, c)
		cancel()
		switch {
		case s.ctx.Err() != nil:
			return
		case err != nil && connLost(err):
			backoff = min(max(2*backoff, minBackoff), maxBackoff, every)
			t.Reset(backoff)
		case err != nil:
			s.log.Warn("lease renewal failed", "redis", s.addr, "err", err)
			t.Reset(every)
		default:
			s.recovered(sent)
			backoff = 0
			t.Reset(every)
		}
	}
}
