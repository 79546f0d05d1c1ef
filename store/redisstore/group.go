package redisstore

import (
	"context"
	"sync"
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
	err := leaseScript.Run(ctx, s.client, s.group, s.chann, s.id, version, count, s.lease.Milliseconds()).Err()
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

func (s *Store) changeCount(delta int64) (version, count int64) {
	s.clientsGen.Add(1) // our own change: read the count again
	s.groupMu.Lock()
	defer s.groupMu.Unlock()
	s.count += delta
	s.version++
	return s.version, s.count
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
				s.clientsGen.Add(1)
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
	s.healthMu.Lock()
	since := s.upSince
	s.healthMu.Unlock()
	if since.IsZero() {
		return 0
	}
	// Other servers may use other leases: allow the longest probe pause.
	grace := maxBackoff + 500*time.Millisecond
	return time.Until(since.Add(grace))
}

func (s *Store) clients(ctx context.Context) (int64, error) {
	gen := s.clientsGen.Load()
	s.countMu.Lock()
	if s.countOK && s.countGen == gen && s.subscribed.Load() && time.Since(s.countAt) < s.lease/3 {
		n := s.countVal
		s.countMu.Unlock()
		return n, nil
	}
	s.countMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := clientsScript.Run(ctx, s.client, s.group).Int64()
	if err != nil {
		s.failed(err)
		return 0, s.wrap("clients", err)
	}
	s.countMu.Lock()
	s.countOK, s.countGen, s.countAt, s.countVal = true, gen, time.Now(), n
	s.countMu.Unlock()
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
		case <-s.kick:
		}
		s.groupMu.Lock()
		v, c := s.version, s.count
		s.groupMu.Unlock()
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
