package redisstore

import (
	"context"
	"fmt"
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

// After a loss. NAME:servers and NAME:clients are soft state, written
// back by every live process within a third of its lease; a FLUSHALL, a
// DEL of either, a restart without persistence or a failover can lose
// them while processes still have clients, and the sum read before every
// live process has renewed is then too low: the group may look empty
// while clients are connected anywhere in it. Which process sees the loss
// first, if any, is a matter of timing, so the loss is recorded in Redis
// itself, by whichever script finds it first, atomically with what it
// found: NAME:group, the group's mark, is set when the group is first
// made and holds the Redis time until which an empty group is not to be
// trusted. A script finds a loss when
//
//   - the mark is gone while the group has members, or this process had
//     written its lease before (held);
//   - this process had written its lease before and its lease or its
//     count is gone;
//   - this process had written its lease before and its lease has run
//     out, though it renews every third of a lease: Redis's clock stepped
//     forward (an NTP step, a VM resumed, a failover to a replica whose
//     clock is ahead), and every lease may look run out at once;
//   - the mark's generation, moved on by every lease write, is lower
//     than one this process has seen: the keys went back in time (a
//     restart from an older snapshot, a failover to a replica behind),
//     and a count may be older than its server's (held under a lease
//     still running);
//   - the group's two keys disagree: a member of NAME:servers without a
//     count, or a count without a lease (each script writes or removes
//     both together, so only a loss parts them).
//
// It then sets the mark to now + window (a lease: see window) and
// publishes, and
// until then every process reading an empty group waits (see Clients):
// the window lives in Redis, so a process that saw nothing honours it
// too. Each process that renews after the loss finds its own lease gone
// and extends the window, so it ends a window after the last renewal
// that repaired the group. A process never counts fewer clients than its
// own.
//
// What stays open: a process that never held a lease (started after the
// loss) and finds nothing at all cannot tell a lost group from a new one;
// if it is the first to touch the group, and its own clients come and go
// before any older process renews, it may read the group as empty.

// markLostLua, shared by both scripts, extends the window of distrust:
// KEYS[3] is the mark, now and window are in ms.
const markLostLua = `
local function markGet()
  -- the mark as "UNTIL GEN" (UNTIL alone from older versions): nil if gone
  local m = redis.call('GET', KEYS[3])
  if not m then return nil, 0 end
  return tonumber(string.match(m, '^(%d+)')) or 0, tonumber(string.match(m, ' (%d+)$')) or 0
end
local function markSet(untilMs, gen)
  redis.call('SET', KEYS[3], tostring(untilMs) .. ' ' .. tostring(gen))
end
local function markLost(now, window, seen)
  -- returns whether no window was open (a loss to announce)
  local untilMs = now + window
  local prev, gen = markGet()
  prev = prev or 0
  if prev > untilMs then untilMs = prev end
  markSet(untilMs, math.max(gen, seen))
  return prev <= now
end
local function whole(now, held, seen)
  -- whether the group's keys look whole (see "After a loss")
  local u, gen = markGet()
  if not u then
    if held then return false end
    if redis.call('ZCARD', KEYS[1]) > 0 or redis.call('HLEN', KEYS[2]) > 0 then return false end
    markSet(0, seen) -- a new group
    return true
  end
  -- The group's keys went back in time (a restart from an older
  -- snapshot, a failover to a replica behind): their counts may be older
  -- than the servers'.
  return gen >= seen
end
`

// leaseScript sets this process's count and renews its lease, removes the
// leases of processes that stopped renewing, and publishes a change if the
// group's count moved. KEYS: servers, clients, mark. ARGV: channel, id,
// version, count (-1: leave the group), lease in ms, "1" if this process
// wrote its lease before (and has not left), the window of distrust after
// a loss in ms. It returns 2 when it found the group's keys lost (see
// "After a loss"), 1 otherwise.
var leaseScript = redis.NewScript(markLostLua + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ver, count, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local held, window, seen = ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8]) or 0
local function countOf(entry)
  if not entry then return 0 end
  return tonumber(string.match(entry, ':(%d+)$')) or 0
end
local cur = redis.call('HGET', KEYS[2], id)
local score = redis.call('ZSCORE', KEYS[1], id)
local lost = not whole(now, held, seen)
if held and ((not score) or (not cur)) then lost = true end
-- Our own lease ran out though we renew every third of it: Redis's clock
-- stepped forward (or we were held back for a lease). The other leases
-- that look run out may be live servers': distrust an empty group until
-- they have renewed, as after a loss.
if held and score and tonumber(score) <= now then lost = true end
local changed = false
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if dead ~= id then
    if countOf(redis.call('HGET', KEYS[2], dead)) ~= 0 then changed = true end
    redis.call('HDEL', KEYS[2], dead)
    redis.call('ZREM', KEYS[1], dead)
  end
end
local curVer = -1
local curCount = countOf(cur)
if cur then curVer = tonumber(string.match(cur, '^(%d+)')) or -1 end
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
if lost then
  markLost(now, window, seen)
  changed = true
end
-- Every write moves the group's generation on: a process that has seen
-- a later one than Redis holds knows that Redis went back in time.
local u, gen = markGet()
gen = math.max(gen, seen) + 1
markSet(u or 0, gen)
if changed then redis.call('PUBLISH', ARGV[1], 'clients') end
if lost then return {2, gen} end
return {1, gen}
`)

// clientsScript sums the counts of the processes whose lease is running,
// and says how long an empty group is still not to be trusted. KEYS:
// servers, clients, mark. ARGV: channel, "1" if this process holds a
// lease, the window of distrust in ms. It returns {sum, wait in ms, 1 if
// it found the group's keys lost}.
var clientsScript = redis.NewScript(markLostLua + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held, window, seen = ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4]) or 0
local lost = not whole(now, held, seen)
local sum, members = 0, 0
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  members = members + 1
  local entry = redis.call('HGET', KEYS[2], all[i])
  if not entry then
    lost = true
  elseif tonumber(all[i + 1]) > now then
    sum = sum + (tonumber(string.match(entry, ':(%d+)$')) or 0)
  end
end
if redis.call('HLEN', KEYS[2]) ~= members then lost = true end
-- The keys stay parted until every server has renewed: announce the
-- loss once, not at every read (each would wake every server to read
-- again, and find it again).
if lost and markLost(now, window, seen) then
  redis.call('PUBLISH', ARGV[1], 'clients')
end
local u, gen = markGet()
local wait = (u or 0) - now
if wait < 0 then wait = 0 end
if lost then return {sum, wait, 1, gen} end
return {sum, wait, 0, gen}
`)

// window is how long after a loss of the group's keys an empty group is
// not trusted: a whole lease. A live process renews every third of it,
// but one that has not renewed within a lease is taken for dead anyway
// (its lease would have run out), so waiting a lease makes a loss no
// less safe than the leases themselves; a shorter window was outrun by
// processes that a loaded machine held back for over a second (the
// checker, at a load average of 40 on 2 cores). (The processes of one
// group share a lease: see docs/redis.md.)
func (s *Store) window() time.Duration { return s.lease }

// held is "1" if this process's lease was written and it has not left.
func (s *Store) held() string {
	if s.leased.Load() {
		return "1"
	}
	return "0"
}

// pushLease runs leaseScript with this process's count.
func (s *Store) pushLease(ctx context.Context, version, count int64) error {
	res, err := leaseScript.Run(ctx, s.client, s.names.group, s.names.channel, s.id, version, count,
		s.lease.Milliseconds(), s.held(), s.window().Milliseconds(), s.gen.Load()).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("lease script answered %d numbers, want 2", len(res))
	}
	if err != nil {
		s.failed(err)
		return s.wrap("lease", err)
	}
	s.seenGen(res[1])
	s.leased.Store(count >= 0)
	if res[0] == 2 {
		s.groupLost()
	}
	return nil
}

// seenGen notes the group's generation a script answered: the highest
// seen is sent with every script, which takes a lower one in Redis for
// keys gone back in time.
func (s *Store) seenGen(gen int64) {
	for {
		old := s.gen.Load()
		if gen <= old || s.gen.CompareAndSwap(old, gen) {
			return
		}
	}
}

// groupLost notes that a script found the group's keys lost (it has
// recorded so in Redis): the count read before is stale, and the loss is
// said once.
func (s *Store) groupLost() {
	s.count.invalidate()
	now := time.Now()
	if prev := s.lostAt.Swap(now.UnixNano()); prev != 0 && now.Sub(time.Unix(0, prev)) < s.lease {
		return // the same loss, found again
	}
	s.log.Warn("the group's client counts were lost in Redis (FLUSHALL, a DEL, a restart or failover, or this server's lease ran out): no server takes the group for empty until every server has counted its clients again", "redis", s.addr)
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

	mu   sync.Mutex
	ok   bool
	gen  uint64 // the stale value the count was read under
	at   time.Time
	n    int64
	wake chan struct{} // closed at the next invalidate (changed)
}

func (c *countCache) invalidate() {
	c.stale.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// changed returns a channel closed at the next invalidate.
func (c *countCache) changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

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
// process's own Join and leave are seen at once. It is never less than
// this process's own count.
//
// While Redis is unreachable, Clients waits for it as long as ctx lasts:
// the count is unknown, and a server waiting for its group to empty must
// keep waiting (and serving once Redis is back), not give up. Nor does it
// report an empty group while the group's keys are being rebuilt after a
// loss or an outage (see "After a loss", and regrouping): it waits until
// a count comes back or the window of distrust ends.
func (s *Store) Clients(ctx context.Context) (int64, error) {
	for {
		if err := s.awaitUsable(ctx, 0); err != nil {
			return 0, err
		}
		changed := s.count.changed()
		n, wait, err := s.clients(ctx)
		if err == nil {
			if _, own := s.members.now(); n < own {
				// Our own clients are missing from Redis's count: it was
				// read while the group's keys are being rebuilt. Ours
				// are connected for sure.
				n = own
			}
		}
		if err == nil && n == 0 {
			// After an outage, leases may have run out (or been lost
			// with Redis) while their servers still have clients; after
			// a loss of the group's keys, the counts are being written
			// back. An empty group before every live server has renewed
			// is not to be trusted.
			wait = max(wait, s.regrouping())
			if wait > 0 {
				if s.waitHook != nil {
					s.waitHook(wait)
				}
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-changed: // a count came back, or the window moved
				case <-ctx.Done():
					t.Stop()
					return 0, ctx.Err()
				}
				t.Stop()
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

// clients reads the group's count (from the cache while it is good) and
// how long an empty group is still not to be trusted.
func (s *Store) clients(ctx context.Context) (n int64, wait time.Duration, err error) {
	n, gen, ok := s.count.get(s.lease / 3)
	if ok {
		return n, 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	res, err := clientsScript.Run(ctx, s.client, s.names.group, s.names.channel, s.held(), s.window().Milliseconds(), s.gen.Load()).Int64Slice()
	if err == nil && len(res) != 4 {
		err = fmt.Errorf("clients script answered %d numbers, want 4", len(res))
	}
	if err != nil {
		s.failed(err)
		return 0, 0, s.wrap("clients", err)
	}
	n, wait = res[0], time.Duration(res[1])*time.Millisecond
	s.seenGen(res[3])
	if res[2] == 1 {
		s.groupLost()
		s.probeNow() // write our own count back now
	}
	if wait == 0 {
		s.count.put(gen, n)
	}
	return n, wait, nil
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
