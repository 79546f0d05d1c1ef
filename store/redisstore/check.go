package redisstore

import (
	"context"
	"time"

	"github.com/tcplab/tcplab/store"
)

var _ store.Checked = (*Store)(nil)

// Keeping the copy current and honest, whatever pub/sub does.
//
// Watchers are woken by pub/sub messages, and a message can be lost: the
// subscription dropped and made again, a connection that died without a
// word, Redis stalled or restarted. And v can be overwritten in Redis by
// something other than tcplab to the same length, which neither its
// length nor the checksum of the bytes a server has not seen can show. So
// while this process has clients, the refresher reads v every
// refreshEvery (only the bytes the copy lacks, one round trip) and, in
// the same script, compares the next checkPiece bytes of the copy with
// what Redis holds there, in passes over the copy piece by piece: a
// same-length overwrite is seen within two passes, 2 × (|v| / checkPiece)
// × refreshEvery at most (one pass, 0.5 s, while v is under 32 KiB).
// When the copy grew, the generation changed, or Redis answered after an
// outage, the watchers are woken to look again; a watcher is thus never
// more than about refreshEvery behind the v Redis holds once Redis
// answers. The check costs Redis a memcmp of checkPiece bytes per round
// (microseconds), and the network checkPiece bytes.

const (
	// refreshEvery is how often the refresher reads and checks v.
	refreshEvery = 500 * time.Millisecond
	// checkPiece is how much of the copy one round compares.
	checkPiece = 32 << 10
	// finalPiece is how much of the copy one script of CheckedValue
	// compares.
	finalPiece = 1 << 20
)

// refresher keeps the copy current and checked while this process has
// clients (see above), until Close.
func (s *Store) refresher() {
	defer s.wg.Done()
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	var p pass
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if _, n := s.members.now(); n == 0 {
			continue
		}
		s.refresh(&p)
	}
}

// pass is where the refresher is in its pass over the copy: it compares
// [at, end), end being the copy's length when the pass began. Bytes that
// come later wait for the next pass: a pass that followed the copy's end
// would, while letters flow, compare only the newest bytes, the ones just
// read from Redis, and never come back to the old ones.
type pass struct{ at, end, gen uint64 }

// refresh is one round of the refresher: it reads v and compares the next
// piece of the pass. It goes to Redis even while Redis is marked
// unreachable: it is one more probe, and its success ends the outage
// (recovered wakes the watchers).
func (s *Store) refresh(p *pass) {
	snap := s.local.snapshot()
	if p.at >= p.end || p.gen != snap.gen || p.end > uint64(len(snap.buf)) {
		p.at, p.end, p.gen = 0, uint64(len(snap.buf)), snap.gen
	}
	n := min(p.end-p.at, checkPiece)
	v, gen, _, err := s.readChecking(s.ctx, snap, int(p.at), int(n))
	if err != nil {
		return
	}
	p.at += n
	if gen != snap.gen || len(v) > len(snap.buf) {
		s.feed.watchers.Signal()
	}
}

// CheckedValue implements store.Checked: Value, after comparing the whole
// copy this process served from with what Redis holds, piece by piece. A
// copy that differs (v overwritten by hand to the same length since the
// refresher last looked there) is dropped with a WARN, and v is read
// afresh, so the v returned is Redis's.
func (s *Store) CheckedValue(ctx context.Context) ([]byte, error) {
	if err := s.awaitUsable(ctx, opTimeout); err != nil {
		return nil, err
	}
	snap := s.local.snapshot()
	for at := 0; ; {
		n := min(len(snap.buf)-at, finalPiece)
		v, _, why, err := s.readChecking(ctx, snap, at, n)
		if err != nil {
			return nil, err
		}
		at += n
		if why != "" || at >= len(snap.buf) {
			return v, nil
		}
	}
}
