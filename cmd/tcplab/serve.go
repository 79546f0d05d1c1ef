package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// serveUntilSignal serves s on ln until ctx ends, then shuts down
// gracefully within grace: stop accepting, let work in flight finish, close
// what is left; a second signal closes it at once. It returns nil: the
// signal itself sets the exit status (130 or 143).
func serveUntilSignal(ctx context.Context, s *server.Server, ln net.Listener, grace time.Duration, log *slog.Logger) error {
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case err := <-served:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace, "active", s.ActiveConns())
	// A second signal cuts the grace period short.
	sctx, cancel := context.WithTimeout(hurry(ctx), grace)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		if hurry(ctx).Err() != nil {
			log.Info("second signal; closed remaining connections")
		} else {
			log.Info("grace period over; closed remaining connections")
		}
	}
	if err := <-served; err != nil && !errors.Is(err, server.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
