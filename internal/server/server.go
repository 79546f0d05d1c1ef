// Package server is the one TCP server lifecycle that every tcplab server
// shares: the accept loop, connection tracking, the concurrency cap and the
// two ways to stop (Shutdown and Close), modelled on net/http.Server.
//
// A protocol supplies only a Handler. The tutorial's servers each grow their
// own accept loop (tms.py accepts once, svr.py loops, strsvr.py accepts a
// fixed two); here they are written once, so limits and shutdown behave the
// same everywhere.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown or Close, so a caller
// can tell a requested stop from a failure.
var ErrServerClosed = errors.New("server closed")

// DefaultMaxConns is the concurrency cap used when Server.MaxConns is zero.
const DefaultMaxConns = 10000

// Handler serves one connection. The server closes conn when Handler returns.
// ctx is cancelled when the server is closed (or a Shutdown runs out of
// time), so a handler blocked on something other than conn can give up.
type Handler func(ctx context.Context, conn net.Conn)

// Server accepts connections and hands each to Handler in its own goroutine.
// The zero value is not usable: Handler must be set. Fields must not change
// after Serve is called.
type Server struct {
	// Handler serves each accepted connection.
	Handler Handler

	// MaxConns caps how many connections are served at once, across every
	// listener Serve is given. When the cap is reached the server stops
	// accepting until a connection ends; clients wait in the kernel's listen
	// backlog rather than being refused, which is what
	// golang.org/x/net/netutil.LimitListener does too. Zero means
	// DefaultMaxConns.
	MaxConns int

	// Logger receives accept errors and lifecycle events. Nil discards.
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closing   bool
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed when shutting down: unblocks the cap wait
	slots     chan struct{} // one token per connection being served: MaxConns
	handlers  sync.WaitGroup
}

func (s *Server) init() {
	if s.done == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.done = make(chan struct{})
		limit := s.MaxConns
		if limit <= 0 {
			limit = DefaultMaxConns
		}
		s.slots = make(chan struct{}, limit)
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Serve accepts connections on ln until Shutdown or Close, then returns
// ErrServerClosed. Any other accept failure that is not temporary is returned
// as is. Serve closes ln before returning.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		ln.Close()
		return errors.New("server: nil Handler")
	}
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	slots := s.slots
	var backoff time.Duration
	for {
		select {
		case slots <- struct{}{}:
		case <-s.done:
			return ErrServerClosed
		}
		conn, err := ln.Accept()
		if err != nil {
			<-slots
			if s.isClosing() {
				return ErrServerClosed
			}
			if isTemporary(err) {
				// Out of file descriptors, or a connection reset before we
				// accepted it: wait and retry, as net/http does, instead of
				// spinning or giving up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("accept failed; retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(conn) {
			conn.Close()
			<-slots
			return ErrServerClosed
		}
		go func() {
			defer s.handlers.Done()
			defer func() { <-slots }()
			defer s.untrack(conn)
			defer conn.Close()
			defer s.recoverHandler(conn)
			s.Handler(s.ctx, conn)
		}()
	}
}

// recoverHandler keeps a handler's panic to its own connection, as
// net/http does: the connection is closed, the panic and its stack are
// logged, and the other clients and the process carry on. A bug one client
// can trigger must not stop the server for everyone.
func (s *Server) recoverHandler(conn net.Conn) {
	if v := recover(); v != nil {
		s.logger().Error("handler panic; connection closed", "client", conn.RemoteAddr().String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
}

func isTemporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return isTemporaryErrno(err)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// track registers conn; it reports false when the server is already closing,
// so a connection accepted during shutdown is never left untracked.
func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[conn] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

// Reset makes conn's coming close a TCP reset instead of an orderly FIN.
// A handler calls it after giving up on a peer that stopped reading: the
// kernel then drops what is still queued for that peer at once, instead of
// keeping it (up to the send buffer, megabytes) in an orphaned socket that
// probes the peer's zero window for minutes after the server has moved on.
// Over TLS it arms the TCP connection beneath. For a connection that is
// not TCP it does nothing.
func Reset(conn net.Conn) {
	if t, ok := conn.(*tls.Conn); ok {
		conn = t.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
}

// ActiveConns reports how many connections are being served now.
func (s *Server) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// stopAccepting closes every listener and marks the server closing.
func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	for ln := range s.listeners {
		ln.Close()
	}
}

// Shutdown stops accepting and waits for the connections in flight to end on
// their own. If ctx ends first, the remaining connections are closed (as by
// Close) and ctx's error is returned once their handlers have returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	finished := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-finished
		return ctx.Err()
	}
}

// Close stops accepting, closes every connection, cancels the handlers'
// context and waits for the handlers to return.
func (s *Server) Close() error {
	s.stopAccepting()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.handlers.Wait()
	return nil
}
