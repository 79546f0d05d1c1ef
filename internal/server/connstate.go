package server

import "net"

// ConnState is a state of a served connection, as the Server's ConnState
// hook reports it: what a test waits on instead of polling ActiveConns.
type ConnState int

const (
	// StateNew: accepted and given a slot (ActiveConns counts it); its
	// handler is about to start, and it waits for its request.
	StateNew ConnState = iota
	// StateActive: its handler has its request (Busy), or a handler
	// serves it again after it was parked.
	StateActive
	// StateParked: its handler parked it (Park) and the server holds it
	// (Parked counts it): it keeps its slot but no goroutine until its
	// client sends, its deadline passes or the server closes, and then
	// StateActive follows. A client that speaks at once can have it
	// woken before this is told: then StateActive, on another
	// goroutine, may come first.
	StateParked
	// StateClosed: its handler has returned, the connection is closed
	// and its slot is free. The last state of every connection that was
	// StateNew, whether its client left, it was evicted or the server
	// closed it.
	StateClosed
)

var stateNames = [...]string{StateNew: "new", StateActive: "active", StateParked: "parked", StateClosed: "closed"}

func (c ConnState) String() string {
	if c >= 0 && int(c) < len(stateNames) {
		return stateNames[c]
	}
	return "unknown"
}

// setState calls the ConnState hook, if any.
func (s *Server) setState(conn net.Conn, state ConnState) {
	if s.ConnState != nil {
		s.ConnState(conn, state)
	}
}
