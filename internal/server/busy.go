package server

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// What the server knows of each connection it serves, for the caps and
// for making room (Server.EvictWaiting): its source, and whether it is
// still waiting for its request, since when. A connection waits from its
// accept until its handler calls Busy; the waiting ones are kept in a
// list per source (Source) in the order they came, so the one a full
// server closes, the oldest of the source with the most waiting, is
// found by a look at each source's count and head.
//
// The record is also the context its handler is given: the server's,
// with the record as the value of trackedKey (one object a connection,
// where context.WithValue would add a 48-byte one to each).
type tracked struct {
	context.Context // the server's
	srv             *Server
	conn            net.Conn      // nil while parked as a bare socket
	bare            *parked       // that parking, while conn is nil (ParkSocket)
	key             netip.Prefix  // its source (Source), invalid when not IP
	since           time.Duration // accepted at (Server.sinceStart); waiting since then unless busy
	busy            bool
	answered        bool     // has its answer and only lingers (Answered)
	writing         bool     // Write is writing through conn: not to be made bare meanwhile
	prev, next      *tracked // in srv.waiting[key] while not busy
}

type trackedKey struct{}

// Value is the server context's, and t for trackedKey.
func (t *tracked) Value(key any) any {
	if _, ok := key.(trackedKey); ok {
		return t
	}
	return t.Context.Value(key)
}

// Busy tells the server that the connection served under ctx (the context
// its handler was given) has sent a complete request: from now on it is
// serving, not waiting, and is never closed to make room for another
// (Server.EvictWaiting). A handler calls it as soon as it has read its
// request, before it does the work. Calling it again, or with a context
// that is not a served connection's, does nothing.
func Busy(ctx context.Context) {
	t, _ := ctx.Value(trackedKey{}).(*tracked)
	if t == nil {
		return
	}
	s := t.srv
	s.mu.Lock()
	was := t.busy
	if !was {
		t.busy = true
		s.unwait(t)
	}
	s.mu.Unlock()
	if !was {
		s.setState(t.conn, StateActive)
	}
}

// Answered tells the server that the connection served under ctx has
// had its whole answer (taken by the client) and stays open only as a
// courtesy, for the client's own close or its late bytes: from now on a
// full server may close it to make room (Server.EvictWaiting), as it
// closes one waiting for its request, but with a plain close, not a
// reset, so the answer the client has is not destroyed. A handler that
// lingers after its answer calls it first: lingering connections held
// as busy let a client sending half a request at a time, answered and
// lingered on for a second each, keep a full server full. Calling it
// again, or with a context that is not a served connection's, does
// nothing.
func Answered(ctx context.Context) {
	t, _ := ctx.Value(trackedKey{}).(*tracked)
	if t == nil {
		return
	}
	s := t.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[t]; t.answered || !ok {
		return
	}
	t.answered = true
	s.unwait(t)
	t.busy = false
	t.since = s.sinceStart()
	s.wait(t)
}

// wait puts t, just accepted, at the end of its source's waiting list.
// s.mu is held.
func (s *Server) wait(t *tracked) {
	l := s.waiting[t.key]
	if l == nil {
		l = &waitList{}
		s.waiting[t.key] = l
	}
	l.push(t)
}

// unwait takes t out of its source's waiting list, if it is in it. s.mu
// is held.
func (s *Server) unwait(t *tracked) {
	l := s.waiting[t.key]
	if l == nil {
		return
	}
	l.remove(t)
	if l.n == 0 {
		delete(s.waiting, t.key)
	}
}

// victim is the connection a full server closes to make room (nil if
// none waits): the oldest waiting connection of the source with the most
// waiting, the oldest of those on a tie. A client whose request is still
// on its way (a lossy link, a TLS handshake's round trip) holds one
// connection; churn comes from sources holding many, so it is theirs
// that are closed, however fast they come. s.mu is held.
func (s *Server) victim() *tracked {
	var best *waitList
	for _, l := range s.waiting {
		if best == nil || l.n > best.n || (l.n == best.n && l.head.since < best.head.since) {
			best = l
		}
	}
	if best == nil {
		return nil
	}
	return best.head
}

// waitList is one source's connections waiting for their request,
// oldest first, and how many.
type waitList struct {
	head, tail *tracked
	n          int
}

func (l *waitList) push(t *tracked) {
	t.prev, t.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
	l.n++
}

// remove takes t out of the list if it is in it.
func (l *waitList) remove(t *tracked) {
	if t.prev == nil && l.head != t {
		return // not in the list
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		l.tail = t.prev
	}
	t.prev, t.next = nil, nil
	l.n--
}
