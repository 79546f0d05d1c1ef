package server

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Finisher is implemented by a Handler whose service can end on its own:
// strsvr's ends when its last client has left. Run stops, as on a signal,
// when the channel Done returns is closed.
type Finisher interface {
	Done() <-chan struct{}
}

// Run is a server process's whole life on ln: it serves until ctx ends (a
// stop signal) or the Handler says it is done (see Finisher), then shuts
// down: it stops accepting, lets the connections in flight finish within
// Grace, and closes what is left, at once if Hurry is closed. It
// returns nil after such a stop, or the error that ended serving early.
// Every tcplab server runs this way, so a signal means the same to all.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	s.init() // the protocol's defaults (Configurer), before Grace is read
	s.mu.Unlock()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	var finished <-chan struct{}
	if f, ok := s.Handler.(Finisher); ok {
		finished = f.Done()
	}
	select {
	case err := <-served:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-finished:
		s.logger().Info("done: stopping")
	case <-ctx.Done():
		if s.Grace < 0 {
			s.logger().Info("shutting down", "active", s.ActiveConns())
		} else {
			s.logger().Info("shutting down", "grace", s.Grace, "active", s.ActiveConns())
		}
	}
	if s.Grace <= 0 {
		s.Close()
		if ctx.Err() != nil && s.Grace == 0 {
			// As a grace period that ran out: the stop closed them.
			s.logger().Info("grace period over; closed remaining connections")
		}
	} else {
		sctx, cancel := context.WithTimeout(context.Background(), s.Grace)
		defer cancel()
		if err := s.Shutdown(hurried(sctx, s.Hurry)); err != nil {
			if isClosed(s.Hurry) {
				s.logger().Info("second signal; closed remaining connections")
			} else {
				s.logger().Info("grace period over; closed remaining connections")
			}
		}
	}
	if err := <-served; err != nil && !errors.Is(err, ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// hurried is ctx, ended early when hurry is closed.
func hurried(ctx context.Context, hurry <-chan struct{}) context.Context {
	if hurry == nil {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		select {
		case <-hurry:
		case <-ctx.Done():
		}
	}()
	return ctx
}

// isClosed reports whether ch is closed (nil: never).
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
