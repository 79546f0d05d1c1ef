package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/store"
)

// v, its epoch and its checksum.
//
// NAME:epoch holds "EPOCH LENGTH SUM": an id that changes whenever v is
// begun afresh (Redis's time, then why the epoch before it ended:
// "1733412345.123456-absent"), the length of v as tcplab last wrote it,
// and a checksum of v (below). A server whose copy is of an earlier epoch
// is told why from that suffix. Every append script updates it together with v, so the two
// can only disagree when something other than tcplab wrote v.
//
// Each process keeps a copy of a prefix of v, with its length and its
// checksum, and sends them with every script. The script trusts the copy,
// and answers with only the bytes after it, when the epoch is the same and
// the copy's checksum, carried forward over the bytes the copy lacks, is
// the one kept beside v. Anything else means Redis no longer holds the v
// this process has seen:
//
//   - v or NAME:epoch gone (DEL, FLUSHALL, Redis restarted without
//     persistence): the next append begins v afresh with a new epoch;
//   - the same epoch, but v shorter than the copy or not continuing it
//     (a failover to a replica that missed writes);
//   - a length that is not the one tcplab wrote (v changed by hand).
//
// The script then answers with all of v, the process drops its copy and
// bumps its generation (store.Generational), and the server ends every
// framed client that holds the old v. The checksum is a polynomial hash
// modulo a prime near 2^26, chosen so that Lua's doubles compute it
// exactly and so that a copy's checksum can be carried forward over the
// bytes appended after it, so its cost grows with the bytes the script
// returns anyway, never with v (docs/redis.md has the figures). A copy
// that differs from v goes
// unnoticed only if the two checksums collide, about one chance in 67
// million.

// sumScript is the checksum, shared by the scripts (Lua 5.1).
const sumScript = `
local P, B = 67108859, 257
local byte = string.byte
local function extend(h, s, i, j)
  -- Three bytes per modulo: h < P < 2^26 and B^3 < 2^24.1, so
  -- h * B^3 + (the three bytes) < 2^51: exact in a double.
  while i + 2 <= j do
    local a, b, c = byte(s, i, i + 2)
    h = (((h * B + a) * B + b) * B + c) % P
    i = i + 3
  end
  while i <= j do
    h = (h * B + byte(s, i)) % P
    i = i + 1
  end
  return h
end
local function meta(vkey, mkey)
  local vlen = redis.call('STRLEN', vkey)
  local m = redis.call('GET', mkey)
  if m == 'edited' then return nil, vlen, 0, 'edited' end
  local epoch, mlen, sum
  if m then epoch, mlen, sum = string.match(m, '^(%S+) (%d+) (%d+)$') end
  if (not epoch) or vlen == 0 then return nil, vlen, 0, 'absent' end
  if tonumber(mlen) ~= vlen then return nil, vlen, 0, 'foreign' end
  return epoch, vlen, tonumber(sum), ''
end
-- begun says why the epoch a caller does not hold began: the why that
-- ended the one before, which the appending script writes after the
-- epoch's time ("1733.12-edited"); 'epoch' for an epoch without it.
local function begun(epoch)
  return string.match(epoch, '%-(%a+)$') or 'epoch'
end
`

// appendScript appends ARGV[5] to v and returns what the caller's copy of
// v lacks. ARGV[1] is the change channel; ARGV[2], ARGV[3] and ARGV[4] the
// epoch, length and checksum of the caller's copy. It returns {epoch,
// start, from, v[from:], sum, why}: start is the length of v before the
// append, from is the caller's length or 0 when the copy is not trusted
// (why says why), sum is the checksum of v after the append.
var appendScript = redis.NewScript(sumScript + `
local epoch, start, sum, why = meta(KEYS[1], KEYS[2])
if not epoch then
  local t = redis.call('TIME')
  epoch = t[1] .. '.' .. t[2] .. '-' .. why
  if start > 0 then sum = extend(0, redis.call('GET', KEYS[1]), 1, start) end
end
local n = redis.call('APPEND', KEYS[1], ARGV[5])
local newsum = extend(sum, ARGV[5], 1, #ARGV[5])
redis.call('SET', KEYS[2], epoch .. ' ' .. n .. ' ' .. newsum)
redis.call('PUBLISH', ARGV[1], epoch .. ' ' .. n)
local from = tonumber(ARGV[3])
if why == '' and epoch ~= ARGV[2] then why = begun(epoch) end
if why == '' and from > start then why = 'diverged' end
if why ~= '' then from = 0 end
local data = redis.call('GETRANGE', KEYS[1], from, -1)
if from > 0 and extend(tonumber(ARGV[4]), data, 1, start - from) ~= sum then
  why, from = 'diverged', 0
  data = redis.call('GETRANGE', KEYS[1], 0, -1)
end
return {epoch, start, from, data, newsum, why}
`)

// readScript returns {epoch, from, v[from:], sum, why} like appendScript,
// without writing v. The epoch is "" while v has no epoch (tcplab has not
// written it yet, or it was lost or changed since). ARGV[4] and ARGV[5]
// are a piece of the caller's copy and where it starts ("" for none): if
// the copy is trusted (its epoch, its length and its checksum carried
// forward all agree) but v holds other bytes there, v was overwritten by
// something other than tcplab to the same length, which its length and
// checksum cannot show; NAME:epoch is then marked "edited", so that every
// server drops its copy at its next script (and the next append begins a
// new epoch), and the answer is all of v, why "edited".
var readScript = redis.NewScript(sumScript + `
local epoch, vlen, sum, why = meta(KEYS[1], KEYS[2])
if not epoch then return {'', 0, redis.call('GETRANGE', KEYS[1], 0, -1), 0, why} end
local from = tonumber(ARGV[2])
if epoch ~= ARGV[1] then why = begun(epoch) elseif from > vlen then why = 'diverged' end
if why ~= '' then from = 0 end
local data = redis.call('GETRANGE', KEYS[1], from, -1)
if from > 0 and extend(tonumber(ARGV[3]), data, 1, #data) ~= sum then
  why, from = 'diverged', 0
  data = redis.call('GETRANGE', KEYS[1], 0, -1)
end
if why == '' and #ARGV[5] > 0 then
  local at = tonumber(ARGV[4])
  if redis.call('GETRANGE', KEYS[1], at, at + #ARGV[5] - 1) ~= ARGV[5] then
    redis.call('SET', KEYS[2], 'edited')
    return {'', 0, redis.call('GETRANGE', KEYS[1], 0, -1), 0, 'edited'}
  end
end
return {epoch, from, data, sum, why}
`)

// copyState is the local copy of v as a request is built.
type copyState struct {
	epoch string
	buf   []byte
	sum   int64
	gen   uint64
}

// answer is a script's answer: v[from:] == data, in epoch, with v's
// checksum sum; why says why a copy was not trusted.
type answer struct {
	epoch string
	from  int
	data  string
	sum   int64
	why   string
}

type appendReq struct {
	p    []byte
	done chan appendResult // buffered: the appender never blocks on it
}

type appendResult struct {
	v   []byte
	gen uint64
	err error
}

// Append appends p to v in Redis and returns v right after it.
func (s *Store) Append(ctx context.Context, p []byte) ([]byte, error) {
	v, _, err := s.AppendGen(ctx, p)
	return v, err
}

// AppendGen implements store.Generational.
func (s *Store) AppendGen(ctx context.Context, p []byte) ([]byte, uint64, error) {
	if len(p) == 0 {
		return s.read(ctx)
	}
	if err := s.usable(); err != nil {
		return nil, 0, err
	}
	// p is copied: the caller may reuse it once we return, even if we return
	// early on its ctx while the batch is still on the wire.
	req := &appendReq{p: bytes.Clone(p), done: make(chan appendResult, 1)}
	s.flight.add()
	select {
	case s.queue <- req:
	case <-ctx.Done():
		s.flight.done()
		return nil, 0, ctx.Err()
	case <-s.ctx.Done():
		s.flight.done()
		return nil, 0, store.ErrClosed
	}
	select {
	case r := <-req.done:
		return r.v, r.gen, r.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-s.ctx.Done():
		return nil, 0, store.ErrClosed
	}
}

// Flush implements store.Flusher: it waits until every append queued so far
// has its answer from Redis (or has failed).
func (s *Store) Flush(ctx context.Context) error {
	return s.flight.wait(ctx, s.ctx)
}

// appender takes queued appends, as many as are waiting, and sends them
// to Redis as one script.
func (s *Store) appender() {
	defer s.wg.Done()
	batch := make([]*appendReq, 0, maxBatch)
	var payload []byte
	for {
		batch, payload = batch[:0], payload[:0]
		select {
		case r := <-s.queue:
			batch, payload = append(batch, r), append(payload, r.p...)
		case <-s.ctx.Done():
			return
		}
	fill:
		for len(batch) < maxBatch && len(payload) < maxBatchBytes {
			select {
			case r := <-s.queue:
				batch, payload = append(batch, r), append(payload, r.p...)
			default:
				break fill
			}
		}
		s.runBatch(batch, payload)
		for range batch {
			s.flight.done()
		}
	}
}

func (s *Store) runBatch(batch []*appendReq, payload []byte) {
	fail := func(err error) {
		for _, r := range batch {
			r.done <- appendResult{err: err}
		}
	}
	if err := s.usable(); err != nil {
		fail(err)
		return
	}
	snap := s.local.snapshot()
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	sent := time.Now()
	res, err := appendScript.Run(ctx, s.client, s.names.value, s.names.channel, snap.epoch, len(snap.buf), snap.sum, payload).Slice()
	cancel()
	if err != nil {
		s.failed(err)
		fail(s.wrap("append", err))
		return
	}
	s.recovered(sent)
	start, a, err := appendReply(res)
	if err != nil {
		fail(s.wrap("append", err))
		return
	}
	v, gen, _ := s.merge(snap, a, false)
	n := start
	for _, r := range batch {
		n += len(r.p)
		if n > len(v) {
			r.done <- appendResult{err: fmt.Errorf("redis %s append: reply shorter than v (%d < %d bytes)", s.addr, len(v), n)}
			continue
		}
		r.done <- appendResult{v: v[:n:n], gen: gen}
	}
}

func appendReply(res []any) (start int, a answer, err error) {
	if len(res) != 6 {
		return 0, a, fmt.Errorf("unexpected reply of %d elements", len(res))
	}
	st, ok := res[1].(int64)
	if !ok {
		return 0, a, fmt.Errorf("unexpected reply: start is %T", res[1])
	}
	a, err = parseAnswer(res[0], res[2], res[3], res[4], res[5])
	return int(st), a, err
}

func parseAnswer(epoch, from, data, sum, why any) (answer, error) {
	var a answer
	var ok [5]bool
	var f, sm int64
	a.epoch, ok[0] = epoch.(string)
	f, ok[1] = from.(int64)
	a.data, ok[2] = data.(string)
	sm, ok[3] = sum.(int64)
	a.why, ok[4] = why.(string)
	if ok != [5]bool{true, true, true, true, true} {
		return a, fmt.Errorf("unexpected reply %T %T %T %T %T", epoch, from, data, sum, why)
	}
	a.from, a.sum = int(f), sm
	return a, nil
}

// Value returns v as Redis holds it now, as the Store interface promises:
// one round trip that fetches only the bytes the local copy lacks. It does
// not answer from the local copy alone, because another process's last
// appends reach this one a pub/sub message later, and a caller such as
// strsvr printing the final v, or a test reading v right after other
// servers' appends, must not see v without them.
func (s *Store) Value(ctx context.Context) ([]byte, error) {
	v, _, err := s.read(ctx)
	return v, err
}

// ValueGen implements store.Generational.
func (s *Store) ValueGen(ctx context.Context) ([]byte, uint64, error) {
	return s.read(ctx)
}

// read reads v from Redis, fetching only what the local copy lacks.
func (s *Store) read(ctx context.Context) ([]byte, uint64, error) {
	if err := s.awaitUsable(ctx, opTimeout); err != nil {
		return nil, 0, err
	}
	v, gen, _, err := s.readChecking(ctx, s.local.snapshot(), 0, 0)
	return v, gen, err
}

// readChecking runs readScript for the copy snap, comparing the n bytes
// of the copy from at with what Redis holds there (n 0: none). It returns
// v and its generation as read, and the answer's why ("edited" when the
// piece differed). An answer overtaken by an append (see localCopy.merge)
// is asked again with the copy as it is then: the same piece while the
// copy is of the same generation (it only grew), none once it is not.
func (s *Store) readChecking(ctx context.Context, snap copyState, at, n int) ([]byte, uint64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	for {
		v, gen, why, again, err := s.readOnce(ctx, snap, at, n)
		if !again {
			return v, gen, why, err
		}
		next := s.local.snapshot()
		if next.gen != snap.gen || next.epoch != snap.epoch || len(next.buf) < at+n {
			at, n = 0, 0
		}
		snap = next
	}
}

// readOnce is one read script. again says its answer was overtaken and the
// read must be asked again.
func (s *Store) readOnce(ctx context.Context, snap copyState, at, n int) (v []byte, gen uint64, why string, again bool, err error) {
	sent := time.Now()
	res, err := readScript.Run(ctx, s.client, s.names.value, snap.epoch, len(snap.buf), snap.sum, at, snap.buf[at:at+n]).Slice()
	if err != nil {
		s.failed(err)
		return nil, 0, "", false, s.wrap("read", err)
	}
	s.recovered(sent)
	if len(res) != 5 {
		return nil, 0, "", false, fmt.Errorf("redis %s read: unexpected reply of %d elements", s.addr, len(res))
	}
	a, err := parseAnswer(res[0], res[1], res[2], res[3], res[4])
	if err != nil {
		return nil, 0, "", false, fmt.Errorf("redis %s read: %w", s.addr, err)
	}
	v, gen, ok := s.merge(snap, a, true)
	return v, gen, a.why, !ok, nil
}

// localCopy is this process's copy of a prefix of v and its identity in
// Redis: the epoch, length and checksum the scripts are sent, so that Redis
// answers with only the bytes the copy lacks (see the scripts above). gen
// counts the copies dropped because Redis no longer held what they showed:
// the generation of store.Generational. Its lock guards the copy between
// the appenders and readers, which snapshot it before a script and merge
// the answer after; slices handed out are never written again.
type localCopy struct {
	mu    sync.Mutex
	epoch string // epoch of buf; "" means no copy
	buf   []byte // a prefix of v in that epoch; only ever appended to
	sum   int64  // checksum of buf
	gen   uint64
}

// snapshot returns the local copy of v as a request is built: the script is
// told its epoch, length and checksum, and may answer with only the bytes
// after it.
func (c *localCopy) snapshot() copyState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyState{epoch: c.epoch, buf: c.buf[:len(c.buf):len(c.buf)], sum: c.sum, gen: c.gen}
}

// merge takes a script's answer for a request built from the copy snap,
// and returns v as the answer reports it and its generation, growing the
// copy when the answer extends it and dropping it when the answer shows
// that Redis lost it. dropped is then the length of the copy dropped (a
// new generation); it is 0 otherwise.
//
// An answer that would drop the copy, to a request sent before the copy
// last changed, may be older than the answers that changed it: a read sent
// while v was absent can be answered "no v" after the first append was
// answered and merged. It proves no reset then. With retry (a read, which
// can be asked again), such an answer is not merged (ok false) and the
// caller asks again with the copy as it is now; a real reset is seen by
// that request. An append cannot be asked again, and its answer always
// carries v's epoch: it is always merged.
func (c *localCopy) merge(snap copyState, a answer, retry bool) (v []byte, gen uint64, dropped int, ok bool) {
	total := a.from + len(a.data)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case a.from > 0 && snap.gen != c.gen:
		// The copy was dropped while this request was on the wire; the
		// answer extends the snapshot it was built from, in its
		// generation, and a client seeing it will be told of the reset
		// by its next answer.
		v := make([]byte, 0, total)
		return append(append(v, snap.buf[:a.from]...), a.data...), snap.gen, 0, true
	case a.from > 0 || (a.epoch != "" && a.epoch == c.epoch && len(a.data) >= len(c.buf) && a.data[:len(c.buf)] == string(c.buf)):
		// The answer continues the copy.
		if len(c.buf) < total {
			c.buf = append(c.buf, a.data[len(c.buf)-a.from:]...)
			c.sum = a.sum
		}
		return c.buf[:total:total], c.gen, 0, true
	case a.epoch != "" && a.epoch == c.epoch && a.why != "diverged" && len(a.data) < len(c.buf) && string(c.buf[:len(a.data)]) == a.data:
		// An older point of the copy (a request overtaken by another,
		// such as the first appends of an epoch). Not an answer that
		// found v shorter than the copy it was sent, or not continuing
		// it ("diverged"): that is v rolled back (a failover), however
		// well its bytes match the start of the copy.
		return c.buf[:total:total], c.gen, 0, true
	case retry && len(c.buf) > 0 && (snap.gen != c.gen || snap.epoch != c.epoch || len(snap.buf) != len(c.buf)):
		// Perhaps overtaken: ask again.
		return nil, 0, 0, false
	}
	if len(c.buf) > 0 {
		c.gen++
		dropped = len(c.buf)
	}
	c.epoch, c.buf, c.sum = a.epoch, []byte(a.data), a.sum
	if a.epoch == "" {
		// Not tied to an epoch: nothing to extend later.
		c.buf, c.sum = nil, 0
		return []byte(a.data), c.gen, dropped, true
	}
	return c.buf[:total:total], c.gen, dropped, true
}

// merge is localCopy.merge, saying at WARN when the copy is dropped.
func (s *Store) merge(snap copyState, a answer, retry bool) ([]byte, uint64, bool) {
	v, gen, dropped, ok := s.local.merge(snap, a, retry)
	if dropped > 0 {
		s.log.Warn("v in Redis is not the v this server had: "+resetCause(a.why)+"; ending the framed clients that hold the old v",
			"redis", s.addr, "key", s.names.key, "had_bytes", dropped, "now_bytes", len(v))
	}
	return v, gen, ok
}

// resetCause says in words what a script's why means.
func resetCause(why string) string {
	switch why {
	case "absent", "epoch":
		return "Redis lost it and it began again (the key deleted or flushed, or Redis restarted without persistence)"
	case "diverged":
		return "Redis holds a v that does not continue it (a failover to a replica that missed writes?)"
	case "foreign":
		return "something other than tcplab changed it in Redis"
	case "edited":
		return "something other than tcplab changed it in Redis, to the same length: its bytes are not the ones this server served"
	}
	return "it changed in Redis (why: " + strconv.Quote(why) + ")"
}

// inflight counts the appends queued or on the wire, for Flush.
type inflight struct {
	mu    sync.Mutex
	n     int
	empty chan struct{} // closed when n drops to 0; nil while n is 0
}

func (f *inflight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.empty = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.empty)
		f.empty = nil
	}
	f.mu.Unlock()
}

func (f *inflight) wait(ctx, closed context.Context) error {
	f.mu.Lock()
	ch := f.empty
	f.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closed.Done():
		return store.ErrClosed
	}
}
