//go:build !linux

package server

import (
	"errors"
	"net"
	"time"
)

// newReadySet: no readiness set here; Park always reports false, and
// handlers wait for their clients in Read.
func newReadySet() readySet { return nil }

func readableNow(int) bool { return false }

// No parking: never a bare socket.
func (p *parker) detach(*Server, *parked) (net.Conn, bool) { return nil, false }

func (s *Server) attach(*tracked, *parked) net.Conn { panic("server: no bare sockets here") }

func interruptFD(int, bool) {}

// Never a bare socket to write to (Write).
func sendNow(int, []byte) (int, error) { return 0, errors.ErrUnsupported }

func waitWritable(int, time.Duration) {}

func (s *Server) lend(*tracked) (net.Conn, error) { return nil, errors.ErrUnsupported }
