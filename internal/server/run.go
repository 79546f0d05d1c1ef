package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Finisher is implemented by a Handler whose service can end on its own:
// strsvr's ends when its last client has left. Run stops, as on a signal,
// when the channel Done returns is closed.
type Finisher interface {
	Done() <-chan struct{}
}

// SilentFinisher is a Finisher whose own log says how it ended (tms's
// one client: "transfer done", as tms.py): Run adds no "done: stopping"
// line after it, nor a "shutting down" one for a stop that finds no
// connection in flight.
type SilentFinisher interface {
	Finisher
	Silent()
}

// Run is a server process's whole life on ln: it serves until ctx ends (a
// stop signal) or the Handler says it is done (see Finisher), then shuts
// down: it stops accepting, lets the connections in flight finish within
// Grace, and closes what is left, at once if Hurry is closed. It
// returns nil after such a stop, or the error that ended serving early.
// Every tcplab server runs this way, so a signal means the same to all.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	s.init() // the protocol's defaults (Configurer), before the grace is read
	s.mu.Unlock()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	var finished <-chan struct{}
	if f, ok := s.Handler.(Finisher); ok {
		finished = f.Done()
	}
	_, silent := s.Handler.(SilentFinisher)
	select {
	case err := <-served:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-finished:
		if !silent {
			s.logger().Info("done: stopping")
		}
	case <-ctx.Done():
		silent = silent && s.ActiveConns() == 0 // nothing in flight to speak of
		switch {
		case silent:
		case s.quietStop:
			s.logger().Info("shutting down", "active", s.ActiveConns())
		default:
			s.logger().Info("shutting down", "grace", s.grace, "active", s.ActiveConns())
		}
	}
	if s.grace == 0 {
		s.Close()
		if ctx.Err() != nil && !s.quietStop && !silent {
			// As a grace period that ran out: the stop closed them.
			s.logger().Info("grace period over; closed remaining connections")
		}
	} else {
		sctx, cancel := context.WithTimeout(context.Background(), s.grace)
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

// Stopping returns a channel that is closed when the Server serving
// under ctx (the context its Handler is given) begins to stop: a handler
// whose work in flight may finish within Grace, but that should start
// nothing new (a message still arriving, a prompt not yet answered),
// watches it. Outside a Server it returns nil, which is never closed.
func Stopping(ctx context.Context) <-chan struct{} {
	if s, ok := ctx.Value(serverKey{}).(*Server); ok {
		return s.done
	}
	return nil
}

// AcceptOnce is ln for a server of one client, as tms.py: its first
// Accept returns the first connection and closes ln, so the kernel
// refuses any other client at once; the next Accept waits until Close
// (the Server stopping) and then fails. Serve it with a Handler that is
// done after that client (Finisher).
func AcceptOnce(ln net.Listener) net.Listener {
	return &acceptOnce{Listener: ln, closed: make(chan struct{})}
}

type acceptOnce struct {
	net.Listener
	mu       sync.Mutex
	accepted bool
	closed   chan struct{}
}

func (l *acceptOnce) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.accepted {
		l.mu.Unlock()
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.accepted = true
		l.mu.Unlock()
		l.Listener.Close()
		return conn, nil
	}
	l.mu.Unlock()
	<-l.closed
	return nil, net.ErrClosed
}

func (l *acceptOnce) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return l.Listener.Close()
}
