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
// list in the order they came, so the one waiting longest is its head,
// found and removed in constant time.
type tracked struct {
	srv        *Server
	conn       net.Conn
	key        netip.Prefix // its source (Source), invalid when not IP
	since      time.Time    // accepted at; waiting since then unless busy
	busy       bool
	prev, next *tracked // in srv.waiting while not busy
}

type trackedKey struct{}

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
		s.waiting.remove(t)
	}
	s.mu.Unlock()
	if !was {
		s.setState(t.conn, StateActive)
	}
}

// waitList is the connections waiting for their request, oldest first.
type waitList struct{ head, tail *tracked }

func (l *waitList) push(t *tracked) {
	t.prev, t.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
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
}
