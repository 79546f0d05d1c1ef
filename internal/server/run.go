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

type hurryKey struct{}

// WithHurry returns a copy of ctx that carries hurry: when hurry ends (a
// second stop signal), Run cuts its grace period short and closes the
// connections still open.
func WithHurry(ctx, hurry context.Context) context.Context {
	return context.WithValue(ctx, hurryKey{}, hurry)
}

// Hurry returns the context given to WithHurry, or one that never ends.
func Hurry(ctx context.Context) context.Context {
	if h, ok := ctx.Value(hurryKey{}).(context.Context); ok {
		return h
	}
	return context.Background()
}

// Run is a server process's whole life on ln: it serves until ctx ends (a
// stop signal) or the Handler says it is done (see Finisher), then shuts
// down: it stops accepting, lets the connections in flight finish within
// Grace, and closes what is left, at once if the Hurry context ends. It
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
		sctx, cancel := context.WithTimeout(Hurry(ctx), s.Grace)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil {
			if Hurry(ctx).Err() != nil {
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
