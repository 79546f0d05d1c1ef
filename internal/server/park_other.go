//go:build !linux

package server

import "net"

// newReadySet: no readiness set here; Park always reports false, and
// handlers wait for their clients in Read.
func newReadySet() readySet { return nil }

func readableNow(int) bool { return false }

// No parking: never a bare socket.
func (p *parker) detach(*Server, *parked) net.Conn { return nil }

func (s *Server) attach(*tracked, *parked) net.Conn { panic("server: no bare sockets here") }

func interruptFD(int, bool) {}
