package multicopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/stream"
)

// An end that can be taken back.
//
// The tutorial's client sends its string and neither ends it nor
// half-closes, so tms guesses its end from a quiet spell (stream.EndWait).
// A guess can be wrong: a link that goes dark in the middle of the string
// looks, from tms's side, exactly like a client that has finished. What
// tms can do is never let a guess look like a complete answer. The copies
// go out at once, but the FIN that ends them, the only thing that tells
// tmc.py its answer is whole, is held back until
//
//   - the client has acknowledged every byte of the answer (so the path
//     from it works again, if it ever stopped), and
//   - long enough after that for a segment of the string still in the
//     client's hands to have been sent again at least once, twice when the
//     link has shown trouble, three or four times when the message came
//     in pieces (holdTries; its retransmission timer doubles at each
//     try: a segment first sent at T0 is sent again by T0 + 2(t - T0) +
//     RTO after any moment t, and t is no sooner than the first time the
//     client was heard after its message: the path from it is known to
//     work from then, not before), and
//   - no byte past the guessed end has arrived meanwhile.
//
// A byte that does arrive turns the ending into a reset: the client sees
// "connection reset", never a clean end of file after copies of a cut
// string. What remains a guess is said in docs/multicopy.md ("What a
// protocol without an end can and cannot promise").

// ErrMessageContinued is wrapped by Echo's error when bytes of the client's
// message arrived after the end tms had guessed from a quiet spell: the
// connection is then reset, so the copies of the cut message already sent
// do not pass for an answer. A caller of Echo (or of the GoAhead's
// context.Cause) tells it with errors.Is.
var ErrMessageContinued = errors.New("message continued after its guessed end")

// ErrClientLeft is wrapped by Echo's error when the client went away
// before taking the whole answer (it reset the connection, or closed it
// while tms waited for the go-ahead). A caller of Echo (or of the
// GoAhead's context.Cause) tells it with errors.Is.
var ErrClientLeft = errors.New("the client left")

// maxHold bounds how long the final FIN may be held back after the answer
// was acknowledged; an end that would need longer cannot be confirmed, and
// the connection is reset instead.
const maxHold = 2 * time.Minute

// leftAfter is how long after a message that ended at a newline the
// client's half-close still counts as part of sending it (printf 'hi\n' |
// nc -N sends the line and its end of file together); a close that comes
// later while tms waits for the go-ahead, or any close after a message
// whose end was a quiet gap, is the client leaving: the tutorial's
// tmc.py never half-closes, and a client that does so at once after its
// string ends it by that, not by a gap.
const leftAfter = time.Second

// tailEvent is what came from the client after its message.
type tailEvent struct {
	kind tailKind
	n    int // tailData: bytes past a guessed end
	err  error
	at   time.Time
}

type tailKind int

const (
	tailData tailKind = iota // bytes past a guessed end
	tailEOF                  // the client half-closed or closed
	tailErr                  // a reset or another error: the client is gone
)

// tailWatch reads what the client sends after its message, from the end
// of the message until the connection is done with: bytes past a guessed
// end are reported (tailData), bytes after a marked end (a newline, the
// 1,000,000-byte limit) are read and dropped, at most drainMax, so that
// closing the socket never finds them unread (which would make the
// kernel reset the connection and drop the copies still queued). It
// reports at most one event: got is closed once ev is set.
type tailWatch struct {
	conn net.Conn
	got  chan struct{}
	ev   tailEvent
	done chan struct{}
}

func watchTail(conn net.Conn, ending stream.Ending) *tailWatch {
	w := &tailWatch{conn: conn, got: make(chan struct{}), done: make(chan struct{})}
	if ending == stream.EndEOF {
		close(w.done) // nothing can follow a half-close
		return w
	}
	conn.SetReadDeadline(time.Time{})
	report := func(ev tailEvent) {
		w.ev = ev
		close(w.got)
	}
	go func() {
		defer close(w.done)
		buf := make([]byte, 16<<10)
		dropped := 0
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				if ending.Guessed() {
					report(tailEvent{kind: tailData, n: n, at: time.Now()})
					return
				}
				if dropped += n; dropped >= drainMax {
					return // not waiting for the answer, by the look of it
				}
			}
			switch {
			case err == nil:
			case errors.Is(err, os.ErrDeadlineExceeded):
				return // stopped
			case isEOF(err):
				report(tailEvent{kind: tailEOF, at: time.Now()})
				return
			default:
				report(tailEvent{kind: tailErr, err: plain(err), at: time.Now()})
				return
			}
		}
	}()
	return w
}

// event returns the event, if one came.
func (w *tailWatch) event() (tailEvent, bool) {
	select {
	case <-w.got:
		return w.ev, true
	default:
		return tailEvent{}, false
	}
}

// stop ends the watch and waits for it.
func (w *tailWatch) stop() {
	select {
	case <-w.done:
		return
	default:
	}
	w.conn.SetReadDeadline(time.Unix(1, 0))
	<-w.done
}

// confirmEnd is called after the last copy of m has been written, when m's
// end was guessed. It returns nil when the end can be taken as the
// client's (see the comment at the top of this file), or an error saying
// why the connection must be reset instead.
//
// sent is the size of the answer, to tell the link's loss from the share
// of it tms had to send again.
func (s *Server) confirmEnd(ctx context.Context, conn net.Conn, m stream.Message, sent int64, tail *tailWatch, live *liveness, before tcpsock.Stats) error {
	clean := m.Settled == 0 && m.LongestPause < minRTO
	if clean && sameHost(conn) {
		// Loopback loses nothing: no segment of the message can be
		// waiting to be sent again. What arrived already was seen.
		if ev, ok := tail.event(); ok {
			return tailError(ev, m)
		}
		return nil
	}
	idle := s.writeTimeout()
	var acked time.Time
	var heard, rested time.Time // the client last heard; the end of the last break once the answer was acknowledged
	queued, progress := -1, time.Now()
	pause := time.Millisecond
	for {
		t := time.NewTimer(pause)
		select {
		case <-tail.got:
			t.Stop()
			if tail.ev.kind == tailEOF {
				return nil // the client ended its message itself: the guess was right
			}
			return tailError(tail.ev, m)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 20*time.Millisecond)
		st, err := tcpsock.ReadStats(conn)
		if err != nil {
			return nil // no statistics: the guess is all there is
		}
		now := time.Now()
		live.observe(st.LastAckRecv, now)
		if h := now.Add(-st.LastAckRecv); h.After(heard) {
			if !acked.IsZero() && !heard.IsZero() && h.Sub(heard) > quietBreak(st, before, sent) {
				rested = h
			}
			heard = h
		}
		if st.OutOfOrderQueued {
			// Bytes past the end arrived ahead of a gap: the message
			// went on. The watch sees them once the gap is filled;
			// there is no need to wait for that.
			return fmt.Errorf("%w: more of it is arriving (out of order) after the %d bytes taken", ErrMessageContinued, len(m.Bytes))
		}
		if st.SendQueued > 0 {
			if st.SendQueued != queued {
				queued, progress = st.SendQueued, now
			} else if now.Sub(progress) > idle {
				return fmt.Errorf("the client acknowledged nothing of the answer for %s", idle)
			}
			acked = time.Time{}
			continue
		}
		if acked.IsZero() {
			acked = now
		}
		since, breaks := live.stretch()
		if since.IsZero() {
			continue
		}
		trouble := !clean || breaks > 0 || st.Retransmits > before.Retransmits || st.Backoff > 0 || st.OutOfOrderPackets > 0
		tries := holdTries(trouble, m.PiecePause >= piecePause)
		// The client's path is known to work from when it was first
		// heard after the last byte of its message, not before: a
		// blackout too short to break the stretch (the quiet before
		// the answer, or the answer sent into it) may have swallowed the
		// first tries of a segment still due. Not from the answer's
		// acknowledgement: at 20% loss a 100 kB answer takes tens of
		// seconds to be acknowledged, and the hold, a multiple of that,
		// ran past maxHold and the client's patience.
		//
		// A break in hearing the client counts only once the answer is
		// acknowledged, when the kernel's probes make a silence mean
		// something: while the answer is on its way, a silence of
		// seconds may be tms's own backoff on a lossy link as well as a
		// dark path, and at 20% loss each way the hold, a multiple of
		// the time since the last such break, ran past maxHold ("the
		// link was out for 32s") or the client's limit. A blackout that
		// begins before the client is first heard after its message
		// still counts in full (it delays that moment); one that begins
		// later, mid-answer, counts as trouble only (two tries): a
		// guess, said in docs/multicopy.md.
		first := live.firstAfter(m.Last)
		if first.IsZero() {
			continue
		}
		since = rested
		if quiet := quietBreak(st, before, sent); now.Sub(heard) > quiet {
			// Silent now for longer than a break: the path may be out
			// this moment. The hold counts as if it came back now, and
			// a FIN never goes into the silence.
			since = now
		}
		if a := first.Add(-max(st.RTT, st.RcvRTT) / 2); a.After(since) {
			since = a
		}
		until := holdUntil(st, m.Last, since, tries)
		if until.Sub(acked) > maxHold {
			return fmt.Errorf("cannot confirm where the %d-byte message ended: the link was out for %s", len(m.Bytes), since.Sub(m.Last).Round(time.Second))
		}
		if !now.Before(until) && !since.Equal(now) {
			return nil
		}
	}
}

// quietBreak is the silence from the client, once the answer is
// acknowledged and the kernel probes it every second, that counts as a
// break in its path: breakAfter (three probes and their answers lost) on
// a link that loses little, more probes on one that loses more, so that
// all of them lost by chance is rarer than one in a thousand. Probes are
// lost as the answer's segments were: the share tms sent again stands for
// the chance that a probe or its answer is lost. At 20% loss each way
// (about a third of the answer sent again) three lost probes in a row
// came in most holds of 20 s, and each pushed the hold further, past
// maxHold.
func quietBreak(st, before tcpsock.Stats, sent int64) time.Duration {
	// One loss in five segments more than were sent: a short answer
	// says little about the link (at 10% loss each way, a slow typist's
	// 90-byte answer sent once: three lost probes in a row cut one hold
	// in ten short with "cannot confirm", four probes make that rarer).
	segs := float64(sent/int64(max(st.SndMSS, 536)) + 5)
	q := min(float64(st.Retransmits-before.Retransmits+1)/segs, 0.8)
	probes := 3
	for p := q * q * q; p > 1e-3 && probes < 20; p *= q {
		probes++
	}
	return max(breakAfter, time.Duration(probes)*livenessPoll+livenessPoll/2)
}

// piecePause is the least pause between reads that shows a message
// written in pieces: one write arrives without one on any but a slow
// link (stream's gap rule uses the same mark).
const piecePause = 5 * time.Millisecond

// holdTries is how many of the client's tries at a segment still due the
// hold covers: one on a link that showed no trouble, two where it did,
// so that one more lost try does not leave a cut message unseen. A
// message typed in pieces gets two more: its end was guessed after a
// pause of a few pieces (stream's gap rule), before the client's first
// try at a lost last piece, where one written at once was guessed after
// 15 of its timeouts (four tries); with Nagle, nothing behind a lost
// piece shows its loss. At 10% loss each way two tries left one slow
// typist in 50 with a cut answer and a clean end of file
// (TestLabSlowTypistOverLossIsNeverACutAnswer): the lost piece and
// both tries lost.
func holdTries(trouble, pieces bool) int {
	n := 1
	if trouble {
		n++
	}
	if pieces {
		n += 2
	}
	return n
}

// minRTO is Linux's and RFC 6298's least retransmission timeout.
const minRTO = 200 * time.Millisecond

// holdUntil is when a guessed end may be taken as the client's: a segment
// the client sent after the message's last byte arrived at last (so not
// before last less a round trip: T0) and lost is sent again at T0 + RTO,
// T0 + 3 RTO, T0 + 7 RTO..., so after any moment x the next try comes by
// T0 + 2(x - T0) + RTO. From alive, since when every try would have
// crossed (the client has been heard without a break), the hold covers
// the given number of tries (holdTries); with half again the client's timeout as tms estimates it from
// its own side of the link, and a little more for the polling.
func holdUntil(st tcpsock.Stats, last, alive time.Time, tries int) time.Time {
	rtt := max(st.RTT, st.RcvRTT)
	rto := rtt + max(4*st.RTTVar, minRTO) // the client's, as Linux computes its own
	rto += rto / 2
	t0 := last.Add(-rtt)
	x := alive
	if x.Before(t0) {
		x = t0
	}
	for range tries {
		x = t0.Add(2*x.Sub(t0) + rto)
	}
	return x.Add(20 * time.Millisecond)
}

// liveness follows, from what comes back from the client, since when it
// has been heard from without a break: a stretch breaks when nothing came
// for breakAfter while tms had data in flight or was probing (keep-alive
// every second once the connection is idle, see watchLiveness). Anything
// from the client counts: data, acknowledgements, answers to probes.
type liveness struct {
	mu     sync.Mutex
	heard  time.Time // the last segment seen; zero: none yet
	since  time.Time // the start of the current stretch
	breaks int
	log    []time.Time // what heard was at each look where it moved, the last logMax
}

// logMax bounds liveness.log: at one look a second while idle, and one
// every 20 ms at most while an end is confirmed (maxHold: two minutes),
// older entries are from before the message ended.
const logMax = 8192

// breakAfter is the silence that breaks a stretch: three keep-alive
// intervals (1 s) and their answers, so that one or two probes lost to
// random loss (at 10% each way, one exchange in five) are not taken for
// a link that went out; a shorter outage still counts as trouble when
// it costs tms a retransmission.
const breakAfter = 3500 * time.Millisecond

// livenessPoll is how often the watch looks: a break is a silence of
// seconds, so a look a second sees every one (the kernel keeps the time
// of the last segment exactly), at one system call each: a thousand
// clients cost a thousand calls a second.
const livenessPoll = time.Second

func (l *liveness) observe(ago time.Duration, now time.Time) {
	heard := now.Add(-ago)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !heard.After(l.heard) {
		return
	}
	switch {
	case l.heard.IsZero():
		l.since = heard
	case heard.Sub(l.heard) > breakAfter:
		l.since = heard
		l.breaks++
	}
	l.heard = heard
	if len(l.log) == logMax {
		l.log = append(l.log[:0], l.log[logMax/2:]...)
	}
	l.log = append(l.log, heard)
}

// firstAfter returns the first moment the client was heard after t as far
// as the watch saw it (no sooner than the truth: the watch sees the last
// segment at each look), or zero when it has not been heard since.
func (l *liveness) firstAfter(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.log {
		if h.After(t) {
			return h
		}
	}
	return time.Time{}
}

// stretch returns the start of the current stretch (zero: the client has
// not been heard) and how many breaks there were.
func (l *liveness) stretch() (time.Time, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since, l.breaks
}

// watchLiveness makes the kernel probe the client every second once the
// connection is idle (keep-alive; the client's kernel answers however
// long its program waits), and follows what comes back until stop is
// called.
func watchLiveness(conn net.Conn) (*liveness, func()) {
	l := &liveness{}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 60})
	}
	if st, err := tcpsock.ReadStats(conn); err == nil {
		l.observe(st.LastAckRecv, time.Now()) // the handshake, at least
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(livenessPoll)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				st, err := tcpsock.ReadStats(conn)
				if err != nil {
					return
				}
				l.observe(st.LastAckRecv, now)
			}
		}
	}()
	return l, func() { close(done); <-stopped }
}

// tailError is the error for an event that ends a guessed end's wait.
func tailError(ev tailEvent, m stream.Message) error {
	switch ev.kind {
	case tailData:
		return fmt.Errorf("%w: %d bytes taken, more came %s after the last of them", ErrMessageContinued, len(m.Bytes), ev.at.Sub(m.Last).Round(time.Millisecond))
	case tailErr:
		return fmt.Errorf("%w: %w", ErrClientLeft, ev.err)
	}
	return nil
}

// sameHost reports whether conn's peer is on this machine, so its
// packets cross the loopback, which loses none.
func sameHost(conn net.Conn) bool {
	r, ok1 := conn.RemoteAddr().(*net.TCPAddr)
	l, ok2 := conn.LocalAddr().(*net.TCPAddr)
	return ok1 && ok2 && (r.IP.IsLoopback() || r.IP.Equal(l.IP))
}

// resetWhenHeard makes conn's close a reset, and first waits, at most
// limit or until ctx ends, for a moment its peer has just been heard from
// (an acknowledgement arrived), so that the RST, which is sent once and
// never again, finds the path open. A client that only reads (tmc.py:
// no timeout, nothing of its own left to send) learns of a lost RST
// never: its kernel sends nothing that tms's could answer with another.
// While it waits, the kernel probes the peer every second when nothing
// is in flight (keep-alive), or resends what is.
func resetWhenHeard(ctx context.Context, conn net.Conn, limit time.Duration) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	tcpsock.Reset(tc)
	tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 120})
	end := time.Now().Add(limit)
	for {
		st, err := tcpsock.ReadStats(conn)
		if err != nil || !st.Open {
			return // reset by the peer, or given up by the kernel: no one to tell
		}
		if st.LastAckRecv < heardWithin {
			return
		}
		if !time.Now().Before(end) {
			return
		}
		t := time.NewTimer(heardWithin / 2)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// heardWithin is how recent the peer's last acknowledgement must be for
// resetWhenHeard to take the path as open.
const heardWithin = 200 * time.Millisecond

// isEOF reports the end of the client's stream.
func isEOF(err error) bool { return errors.Is(err, io.EOF) }
