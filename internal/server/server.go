// Package server is the one TCP server lifecycle that every tcplab server
// shares, so limits, signals and shutdown behave the same everywhere:
//
//   - Socket: where to listen, a port or the socket systemd passed;
//   - Server: the accept loop, connection tracking, the concurrency caps
//     (in all and per source address) with an immediate refusal over them,
//     the detection of peers that vanished, and the two ways to stop
//     (Shutdown and Close), modelled on net/http.Server;
//   - Run: serve until a signal or until the protocol says it is done
//     (Finisher), then drain within Grace, sooner on a second signal;
//   - Output: standard output and error that never hold a handler up.
//
// A protocol supplies only a Handler (multicopy.Server, status.Service,
// sharedstring.Server). The tutorial's servers each grow their own accept
// loop (tms.py accepts once, svr.py loops, strsvr.py accepts a fixed two);
// here it is written once.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// ErrServerClosed is returned by Serve after Shutdown or Close, so a caller
// can tell a requested stop from a failure.
var ErrServerClosed = errors.New("server closed")

// DefaultGrace is Server.Grace's default: the time a stop leaves the
// connections in flight, as tms's --grace.
const DefaultGrace = 5 * time.Second

// DefaultMaxConns is the concurrency cap used when Server.MaxConns is zero.
const DefaultMaxConns = 10000

// Handler is a protocol: ServeConn serves one connection, and the server
// closes conn when it returns. ctx is cancelled when the server is closed
// (or a Shutdown runs out of time), so a handler blocked on something other
// than conn can give up.
type Handler interface {
	ServeConn(ctx context.Context, conn net.Conn)
}

// Configurer is implemented by a Handler whose protocol has its own
// defaults for some of the Server's fields: a cap sized for what its
// clients hold, a refusal in its own words, a TCP user timeout that
// matches its write timeout, a grace period. The Server calls Configure
// once, before it accepts (or Run waits) for the first time; Configure
// fills in the fields the caller left zero, so that every field's zero
// value is the protocol's documented default, and it may note the
// resolved caps for its own use. The caller sets the fields (from flags,
// say); the protocol never builds a Server of its own.
type Configurer interface {
	Configure(s *Server)
}

// HandlerFunc lets an ordinary function be a Handler.
type HandlerFunc func(ctx context.Context, conn net.Conn)

// ServeConn calls f(ctx, conn).
func (f HandlerFunc) ServeConn(ctx context.Context, conn net.Conn) { f(ctx, conn) }

// Server accepts connections and hands each to Handler in its own goroutine.
// The zero value is not usable: Handler must be set. Fields must not change
// after Serve is called.
type Server struct {
	// Handler serves each accepted connection.
	Handler Handler

	// MaxConns caps how many connections are served at once, across every
	// listener Serve is given. The server keeps accepting when the cap is
	// reached and refuses the connections over it at once (see Refuse), as
	// Redis answers "max number of clients reached": a client learns in one
	// round trip that the server is full, instead of waiting unanswered in
	// the kernel's listen backlog. Zero means DefaultMaxConns.
	MaxConns int

	// MaxConnsPerAddr caps how many of those connections one source
	// address may hold at once: an IPv4 address, or an IPv6 /64 (what one
	// host is usually given). A connection over it is refused as one over
	// MaxConns is, so idle connections from one address cannot shut out
	// the clients of every other. Zero means a quarter of MaxConns (at
	// least 1); negative means no per-address cap.
	MaxConnsPerAddr int

	// EvictWaiting makes a full server serve its real clients: when every
	// slot is taken (MaxConns), a new connection makes room by closing the
	// connection that has waited longest for its request, of the source
	// (Source) with the most connections waiting, instead of being
	// refused, as servers under slowloris pressure shorten their patience.
	// A client whose request is slow to come (a lossy link, a TLS
	// handshake's round trip) holds one connection, churn comes from
	// sources holding many: theirs are closed, however fast they come.
	// A connection waits for its request from its accept until its handler
	// calls Busy; a connection that is busy is never closed for another,
	// and when all are, the newcomer is refused as without EvictWaiting.
	// The per-address cap still refuses: an address at its share makes
	// room for no one. So a client that asks and reads is served while
	// any number of addresses hold silent connections: they close one
	// another's, and a real request, complete as it is
	// accepted (deferred accept), is busy microseconds later.
	//
	// Leave it off for a protocol whose clients are legitimately silent
	// for long (strsvr's at a prompt: a person thinking).
	EvictWaiting bool

	// Refuse, if set, tells a connection over a cap why it is not served,
	// for example with one line of text; reason says which cap, e.g. "max
	// number of clients reached (1000)". It runs in its own goroutine with
	// the connection's deadline RefuseTimeout away and may read (to learn
	// which protocol the client speaks) as well as write. The server then
	// half-closes the connection, reads what the client still sends until
	// that deadline, and closes it. At most maxRefusing refusals run at
	// once; a connection over that, or any refused connection when Refuse
	// is nil, is reset at once. A refusal so costs at most one goroutine
	// and one descriptor for about RefuseTimeout (up to half as long again
	// for a hook that gives a late answer its own deadline; see
	// RefuseTimeout), never a slot.
	Refuse func(conn net.Conn, reason string)

	// KeepAlive and UserTimeout make the connection of a peer that
	// vanished (no FIN, no RST) fail, so its slot is freed: see
	// DetectVanishedPeer, which the server calls on each connection it
	// serves. The zero values mean DefaultKeepAlive and
	// DefaultUserTimeout: a vanished peer's slot is freed within 45 s,
	// idle or with a reply in flight, and a live one keeps it however
	// long its user is away from the keyboard (within the handler's own
	// read timeout). A handler with a write timeout longer than 30 s
	// should set UserTimeout to UserTimeoutFor(it), or a live reader
	// that pauses is cut off at 45 s.
	KeepAlive   net.KeepAliveConfig
	UserTimeout time.Duration

	// Grace is how long Run lets connections in flight finish after a
	// stop before it closes them. Zero means DefaultGrace; negative, none:
	// they are closed at once, and a signal's stop logs that the grace
	// period is over (svr --grace 0). A protocol whose Configure sets
	// none has nothing to finish (strsvr answers each letter as it
	// comes): its stop says nothing of a grace period.
	Grace time.Duration

	// Hurry, if not nil, is closed on a second stop signal: Run then cuts
	// the grace period short and closes the connections still open.
	Hurry <-chan struct{}

	// ParkAfter is how long a handler that serves a conversation keeps
	// its goroutine while its client is silent before it parks the
	// connection (see Park and the function ParkAfter). Zero means
	// DefaultParkAfter (1 s); negative, never park that way.
	ParkAfter time.Duration

	// Logger receives accept errors and lifecycle events. Nil discards.
	Logger *slog.Logger

	// ConnState, if set, is called when a served connection changes
	// state (see ConnState's values), on the goroutine that changed it,
	// after the change: with StateNew the slot is taken, with
	// StateClosed it is free again, and Shutdown and Close return only
	// after the StateClosed calls. It must not block. A refused
	// connection is never reported. As net/http's Server.ConnState, it is
	// for tests and metrics, which learn of a connection's changes from
	// it instead of polling ActiveConns.
	ConnState func(net.Conn, ConnState)

	mu            sync.Mutex
	listeners     map[net.Listener]struct{}
	conns         map[*tracked]struct{}      // served
	perAddr       map[netip.Prefix]int       // served connections per source
	waiting       map[netip.Prefix]*waitList // per source, served and waiting for a request, oldest first
	refusedTotal  atomic.Uint64              // connections refused, for metrics
	evictedTotal  atomic.Uint64              // connections closed to make room
	refusing      map[net.Conn]struct{}      // being refused
	lent          map[*tracked]net.Conn      // copies of bare sockets Write is finishing a write through
	closing       bool
	connsClosed   bool // Close has closed them: one handed back later is closed at once
	ctx           context.Context
	cancel        context.CancelFunc
	done          chan struct{}  // closed when shutting down
	started       time.Time      // when init ran: connections' times are durations since (monotonic)
	maxConns      int            // MaxConns resolved
	maxPer        int            // MaxConnsPerAddr resolved; 0: no cap
	grace         time.Duration  // Grace resolved; 0: none
	quietStop     bool           // the protocol has nothing to finish (see Grace)
	refused       int            // refusals since the last log line about them
	refusalLogged time.Time      // when that line was written
	handlers      sync.WaitGroup // one for each connection served or refused
	parker        parker
}

func (s *Server) init() {
	if s.done == nil {
		asked := s.Grace
		if c, ok := s.Handler.(Configurer); ok {
			c.Configure(s)
		}
		s.grace, s.quietStop = Setting(s.Grace, DefaultGrace), asked == 0 && s.Grace < 0
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*tracked]struct{})
		s.perAddr = make(map[netip.Prefix]int)
		s.waiting = make(map[netip.Prefix]*waitList)
		s.refusing = make(map[net.Conn]struct{})
		s.ctx, s.cancel = context.WithCancel(context.WithValue(context.Background(), serverKey{}, s))
		s.done = make(chan struct{})
		s.started = time.Now()
		s.maxConns = s.MaxConns
		if s.maxConns <= 0 {
			s.maxConns = DefaultMaxConns
		}
		switch {
		case s.MaxConnsPerAddr > 0:
			s.maxPer = s.MaxConnsPerAddr
		case s.MaxConnsPerAddr == 0:
			s.maxPer = QuarterOf(s.maxConns)
		}
	}
}

// sinceStart is the time now, as tracked keeps it.
func (s *Server) sinceStart() time.Duration { return time.Since(s.started) }

// QuarterOf is the per-address cap a zero MaxConnsPerAddr means for a
// server of maxConns slots: a quarter of them, at least 1.
func QuarterOf(maxConns int) int { return max(1, maxConns/4) }

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

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
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
		t, reason, victim := s.track(conn)
		switch {
		case t == nil && reason == "":
			conn.Close()
			return ErrServerClosed
		case t == nil:
			s.refuse(conn, reason)
			continue
		}
		if victim != nil {
			s.evict(victim)
		}
		go s.serveConn(t, conn, s.Handler.ServeConn, true)
	}
}

// serveConn runs h, the handler or what it parked the connection to do
// next (see Park), and then, unless h parked conn again, ends the
// connection: closes it and frees its slot. accepted is true for a
// connection just accepted, false for one that was parked.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, h HandlerFunc, accepted bool) {
	t, _ := ctx.Value(trackedKey{}).(*tracked)
	if accepted {
		s.setState(conn, StateNew)
		if err := DetectVanishedPeer(conn, s.KeepAlive, s.UserTimeout); err != nil {
			s.logger().Warn("vanished peers may hold this slot", "client", conn.RemoteAddr().String(), "err", err)
		}
	} else {
		s.setState(conn, StateActive)
	}
	for s.callHandler(ctx, conn, h) {
		pk := s.parker.take(conn)
		if pk == nil {
			break // the handler is done with conn
		}
		if s.parker.arm(s, pk) {
			s.setState(conn, StateParked)
			return // parked: the server calls pk.next when conn is ready
		}
		ctx, h = pk.ctx, pk.next // the server is closing: go on at once
	}
	s.parker.take(conn) // after a panic
	conn.Close()
	s.untrack(t)
	s.setState(conn, StateClosed)
	s.handlers.Done()
}

// callHandler runs h and reports whether it returned. A panic stays with
// its own connection, as net/http does: the connection is closed, the
// panic and its stack are logged, and the other clients and the process
// carry on. A bug one client can trigger must not stop the server for
// everyone.
func (s *Server) callHandler(ctx context.Context, conn net.Conn, h HandlerFunc) (ok bool) {
	defer s.recoverHandler(conn)
	h(ctx, conn)
	return true
}

// recoverHandler logs a panic of the code serving conn and stops it there.
func (s *Server) recoverHandler(conn net.Conn) {
	if v := recover(); v != nil {
		// conn.RemoteAddr() may be nil (a net.Conn of a socket whose peer
		// has gone); a panic here would stop the process.
		s.logger().Error("handler panic; connection closed", "client", fmt.Sprint(conn.RemoteAddr()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
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

// track registers conn for serving if there is room for it. It returns
// nil with an empty reason when the server is already closing (so a
// connection accepted during shutdown is never left untracked), and nil
// with the cap that is full when conn must be refused. With EvictWaiting,
// a full server makes room by untracking the connection that has waited
// longest for its request: victim, for the caller to close.
func (s *Server) track(conn net.Conn) (t *tracked, reason string, victim *tracked) {
	key := addrKey(conn.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, "", nil
	}
	perAddrFull := s.maxPer > 0 && key.IsValid() && s.perAddr[key] >= s.maxPer
	switch {
	case len(s.conns) >= s.maxConns && (!s.EvictWaiting || len(s.waiting) == 0 || perAddrFull):
		return nil, fmt.Sprintf("max number of clients reached (%d)", s.maxConns), nil
	case len(s.conns) >= s.maxConns:
		victim = s.victim()
		s.forget(victim)
	case perAddrFull:
		return nil, fmt.Sprintf("max number of connections from one address reached (%d)", s.maxPer), nil
	}
	t = &tracked{Context: s.ctx, srv: s, conn: conn, key: key, since: s.sinceStart()}
	s.conns[t] = struct{}{}
	if key.IsValid() {
		s.perAddr[key]++
	}
	s.wait(t)
	s.handlers.Add(1)
	return t, "", victim
}

// forget stops counting t against the caps. s.mu is held.
func (s *Server) forget(t *tracked) {
	if _, ok := s.conns[t]; !ok {
		return
	}
	delete(s.conns, t)
	s.unwait(t)
	if t.key.IsValid() {
		if s.perAddr[t.key] <= 1 {
			delete(s.perAddr, t.key)
		} else {
			s.perAddr[t.key]--
		}
	}
}

func (s *Server) untrack(t *tracked) {
	if t == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(t)
}

// evict closes victim, already untracked, to make room: with a reset, so
// the kernel frees it at once, unless it has had its answer (Answered),
// which a reset could destroy; its handler's read fails and it returns.
func (s *Server) evict(victim *tracked) {
	s.evictedTotal.Add(1)
	s.mu.Lock()
	addr := victim.addr()
	// Under s.mu, so that the connection is not parked as a bare socket
	// (ParkSocket) meanwhile, its net.Conn closed under the reset.
	if victim.answered {
		// Interrupt, parked or not (see below): its handler closes it,
		// with a FIN.
		victim.interrupt(false)
	} else {
		// Interrupt, not Close: the victim may be parked (see Park), and
		// a parked connection closed under the server would never be
		// handed back, holding its goroutine's place in the drain for
		// ever. Its handler finds the end of file and closes it, with
		// SO_LINGER 0: a reset, as before.
		victim.interrupt(true)
	}
	s.mu.Unlock()
	if victim.answered {
		s.logger().Info("closed a connection lingering after its answer, to make room",
			"client", addr, "lingered", (s.sinceStart() - victim.since).Round(time.Millisecond))
		return
	}
	s.logger().Info("closed a connection waiting for its request, to make room",
		"client", addr, "waited", (s.sinceStart() - victim.since).Round(time.Millisecond))
}

// interrupt makes t's handler stop waiting for its client (Interrupt),
// after setting SO_LINGER 0 if reset, so that its close is a reset:
// through its net.Conn, or through its descriptor while it is parked as
// a bare socket (ParkSocket). s.mu is held: t's connection is then not
// detached or attached meanwhile.
func (t *tracked) interrupt(reset bool) {
	switch {
	case t.conn != nil:
		if reset {
			tcpsock.Reset(t.conn)
		}
		Interrupt(t.conn)
	case t.bare != nil:
		interruptFD(int(t.bare.fd), reset)
	}
}

// addr is t's client's address, for the log. s.mu is held.
func (t *tracked) addr() string {
	if t.conn != nil {
		return t.conn.RemoteAddr().String()
	}
	return t.key.Addr().String()
}

// Refused is how many connections the server has refused (over a cap)
// since it started; Evicted, how many it has closed to make room (see
// EvictWaiting). Logs count them only in part (see LimitHandler); these
// are exact, for metrics.
func (s *Server) Refused() uint64 { return s.refusedTotal.Load() }

// Evicted: see Refused.
func (s *Server) Evicted() uint64 { return s.evictedTotal.Load() }

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
		s.parker.close(s)
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
	s.connsClosed = true
	for t := range s.conns {
		if t.conn != nil {
			t.conn.Close()
		} else if t.bare != nil {
			// Parked as a bare socket, its descriptor the parker's: woken,
			// it is handed back and closed (connsClosed).
			interruptFD(int(t.bare.fd), false)
		}
	}
	for c := range s.refusing {
		c.Close()
	}
	for _, c := range s.lent {
		c.Close() // Write's, which fails at once
	}
	s.mu.Unlock()
	s.parker.close(s) // the parked connections are closed: their handlers end
	s.handlers.Wait()
	return nil
}
