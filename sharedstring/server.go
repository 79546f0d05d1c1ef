package sharedstring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/store"
)

// Defaults for the Server's limits.
const (
	// DefaultWriteTimeout is how long a client may accept no reply bytes.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultReadTimeout is how long a client may send nothing.
	DefaultReadTimeout = 30 * time.Minute
	// DefaultMaxConns caps the clients served at once (server.Server's
	// MaxConns, see Configure). A client may sit idle for up to the read
	// timeout (a watcher for ever), so the cap, not the timeouts, is what
	// keeps a crowd of idle connections from holding the process; 1,000
	// is also what tms --keep uses.
	DefaultMaxConns = 1000
	// DefaultMaxWatchers caps the watch connections served at once, within
	// MaxConns: a quarter of DefaultMaxConns. A watcher has no read
	// deadline and, while v does not change, nothing written to it, so
	// watchers must not be able to hold every slot; three quarters stay
	// for clients that type.
	DefaultMaxWatchers = DefaultMaxConns / 4
	// readChunk is how many letters one read takes at most; they are
	// appended in one Store.Append and answered in one writev.
	readChunk = 4096
	// DefaultWatchOutage is how long a watcher waits out a store that
	// cannot be read: a stall or a restart of Redis is waited out and the
	// watcher caught up; a longer outage is said.
	DefaultWatchOutage = 10 * time.Second
)

// Server is the shared-string protocol: strsvr. It is a server.Handler
// (ServeConn serves one client), a server.Configurer (Configure gives the
// server.Server this protocol's caps and refusal) and a server.Finisher
// (Done says when the tutorial's server would exit); Run is its whole life
// as a process. Every field's zero value is its documented default, and a
// negative duration means none (the project's convention, see
// internal/server); Store must be set. Fields must not change after the
// first ServeConn or Run; Validate says which field is out of range.
type Server struct {
	// Store holds v and counts the clients.
	Store store.Store

	// WaitFor makes the server hold every client until this many have
	// connected, as the tutorial's does with nc = 2. Zero or one: serve
	// each client as it comes.
	WaitFor int

	// Keep keeps the server serving when the last client leaves: Done is
	// then never closed, and Run ends only with its context.
	Keep bool

	// WriteTimeout drops a client whose connection accepts no reply bytes
	// for this long (to within a sixteenth): a client that stops reading
	// is disconnected, never buffered for. Zero means DefaultWriteTimeout;
	// it cannot be none.
	WriteTimeout time.Duration

	// ReadTimeout drops a client that sends nothing for this long, to
	// within a sixteenth (watchers excepted: waiting is what they are
	// for). Zero means DefaultReadTimeout; negative, no read timeout.
	ReadTimeout time.Duration

	// MaxValue bounds v: a client whose letters would grow v beyond it is
	// disconnected. Zero means DefaultMaxValue. With a store.Capped store
	// (Memory, File) the bound is exact: the check is part of the append.
	// With another store (Redis) the check comes before the append and
	// counts only the v this server has seen, so v can overshoot by at most
	// one read (4 KiB) per client of the group appending at that moment.
	MaxValue int

	// MaxWatchers caps the watch connections served at once; they count
	// towards the server.Server's MaxConns too. A watcher over the cap
	// gets an 'e' frame saying so instead of the 'h' frame, and is closed.
	// Zero means a quarter of MaxConns (at least 1), DefaultMaxWatchers
	// by default.
	MaxWatchers int

	// ParkAfter is how long a client may be silent before its connection
	// gives back its goroutine and read buffer and waits in the server's
	// readiness set instead (see server.Park): a watcher, or a person
	// thinking at a prompt, then costs its connection's state only. Zero
	// means server.DefaultParkAfter (1 s); negative, never (Run's
	// server.Server.ParkAfter).
	ParkAfter time.Duration

	// WatchOutage is how long a watcher waits out a store that cannot be
	// read (Redis stalled, lost, partitioned away) before it is ended with
	// an 'e' frame saying so; until then it reads again whenever the store
	// signals (one that finds Redis again does at once) or every second,
	// and so catches up when the store answers. Zero means
	// DefaultWatchOutage.
	WatchOutage time.Duration

	// Logger receives connection events. Nil discards.
	Logger *slog.Logger

	once     sync.Once
	log      *slog.Logger
	slots    int           // the server.Server's MaxConns, set by Configure
	gate     chan struct{} // closed once WaitFor clients have joined
	gated    sync.Once
	joined   atomic.Int64 // clients that ever joined
	size     atomic.Int64 // the longest v seen, for MaxValue (not Capped stores)
	capped   store.Capped // Store, if it checks MaxValue itself
	watch    atomic.Int64 // watch connections now
	watchers watchers     // they and the changes of v
	done     chan struct{}
	ended    sync.Once
	endErr   error // why watching the group failed; set before done closes

	gens store.Generational // Store, if it can lose v and begin again
}

func (s *Server) init() {
	s.once.Do(func() {
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.gate = make(chan struct{})
		if s.WaitFor <= 1 {
			close(s.gate)
		}
		s.done = make(chan struct{})
		s.capped, _ = s.Store.(store.Capped)
		s.gens, _ = s.Store.(store.Generational)
	})
}

// Run is strsvr's life: srv serves s on ln (and, if pc is not nil,
// discovery answers on pc, the UDP socket on the same port number) until
// ctx ends or, unless Keep, the group of clients has become empty (see
// Done); then every connection is closed at once, the appends still in
// flight are waited for, and Run returns v as the store keeps it: the
// tutorial's "the final value of v". The error, if not nil, is why serving
// ended early (v is still returned), or a *FinalValueError (v is then
// nil). Run closes ln and pc, not the Store. A Server runs once.
//
// srv's caps are the caller's (zero: this protocol's defaults, filled in
// by Configure); its Handler is set to s.
func (s *Server) Run(ctx context.Context, srv *server.Server, ln net.Listener, pc net.PacketConn) ([]byte, error) {
	s.init()
	srv.Handler = s
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if pc != nil {
		wg.Go(func() { s.serveDiscovery(bg, pc) })
	}
	if !s.Keep {
		wg.Go(func() { s.watchGroup(bg) })
	}
	s.log.Info("strsvr listening", "addr", ln.Addr().String(), "discovery", pc != nil)
	err := srv.Run(ctx, ln)
	stop()
	wg.Wait()
	if s.endErr != nil && ctx.Err() == nil && err == nil {
		err = fmt.Errorf("watch clients: %s", notRetrying(s.endErr))
	}
	v, verr := s.finalValue()
	if verr != nil {
		return nil, verr
	}
	return v, err
}

// FinalValueError is Run's error when v cannot be read at the end.
type FinalValueError struct{ Err error }

func (e *FinalValueError) Error() string {
	return "read the final value of v: " + notRetrying(e.Err)
}

func (e *FinalValueError) Unwrap() error { return e.Err }

// notRetrying is a store error's message for a server that is stopping:
// less the store's "; retrying", since nothing will retry.
func notRetrying(err error) string {
	return strings.TrimSuffix(err.Error(), "; retrying")
}

// finalValue waits for the appends still in flight (their clients are
// gone, but they may still be stored), so that the v it returns is the v
// the store keeps. A store that others can write behind its back
// (store.Checked: Redis) compares all of v first, and says so if what was
// served differs from what it holds: the final v is always the store's.
func (s *Server) finalValue() ([]byte, error) {
	if f, ok := s.Store.(store.Flusher); ok {
		ctx, cancel := context.WithTimeout(context.Background(), flushWait)
		f.Flush(ctx)
		cancel()
	}
	value := s.Store.Value
	if c, ok := s.Store.(store.Checked); ok {
		value = c.CheckedValue
	}
	v, err := value(context.Background())
	if err != nil {
		return nil, &FinalValueError{err}
	}
	return v, nil
}

// flushWait bounds how long Run waits for the store's appends in flight.
const flushWait = 10 * time.Second

// serveDiscovery answers framed-mode probes arriving on pc (UDP, on the same
// port number as the TCP listener) until ctx ends, then closes pc. Anything
// that is not a probe is ignored; an answer is never larger than its probe.
func (s *Server) serveDiscovery(ctx context.Context, pc net.PacketConn) {
	s.init()
	defer context.AfterFunc(ctx, func() { pc.Close() })()
	defer pc.Close()
	buf := make([]byte, 64)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors from earlier answers surface here on some
			// systems; they concern one peer, not the listener.
			s.log.Debug("discovery read", "err", err)
			time.Sleep(time.Millisecond)
			continue
		}
		if ans := answerProbe(buf[:n]); ans != nil {
			pc.SetWriteDeadline(time.Now().Add(time.Second))
			pc.WriteTo(ans, addr)
		}
	}
}

// Done implements server.Finisher: the channel is closed once the group of
// clients sharing the Store has become empty after at least one client
// came (and after the WaitFor clients have gathered), the moment the
// tutorial's server prints v and exits; or when the group can no longer
// be watched (Run then says why). Run watches the group (unless Keep), so
// Done is only ever closed while Run runs. The group is what Store.Clients
// counts: for a store shared by several servers, all of their clients.
func (s *Server) Done() <-chan struct{} {
	s.init()
	return s.done
}

// end closes done, with the reason watching failed if it did.
func (s *Server) end(err error) {
	s.ended.Do(func() {
		s.endErr = err
		close(s.done)
	})
}

// watchGroup closes done (see Done) when the group has become empty, or
// with the reason if it cannot be watched, or returns when ctx ends.
func (s *Server) watchGroup(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := s.Store.Changes(ctx)
	if err != nil {
		s.end(err)
		return
	}
	gate := s.gate // nil once seen open
	seen := false
	for {
		select {
		case <-s.gate:
			gate = nil
		default:
		}
		n, err := s.Store.Clients(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.end(err)
			}
			return
		}
		if n > 0 {
			seen = true
		}
		if gate == nil && n == 0 && (seen || s.joined.Load() > 0) {
			s.end(nil)
			return
		}
		select {
		case _, ok := <-changes:
			if !ok {
				if ctx.Err() == nil {
					s.end(store.ErrClosed)
				}
				return
			}
		case <-gate:
		case <-ctx.Done():
			return
		}
		// Changes fire for every letter too, not only for joins and
		// leaves. Looking at most every emptyCheckEvery keeps this
		// goroutine (and, for a shared store, a Clients round trip) off
		// the path of each letter; signals meanwhile are coalesced.
		select {
		case <-time.After(emptyCheckEvery):
		case <-ctx.Done():
			return
		}
	}
}

// emptyCheckEvery bounds how often watchGroup counts the clients, and so
// how late after the last client leaves the server notices.
const emptyCheckEvery = 10 * time.Millisecond

// conn is one client's connection as the handler sees it, and all that is
// kept of it while it is parked (see serve): so it is kept small.
type conn struct {
	s                *Server
	c                net.Conn
	leave            func()     // uncounts the client (Store.Join)
	mu               sync.Mutex // serialises writes (replies and watch updates)
	sc               *scratch   // while a turn runs
	have             int        // framed: how much of v the client holds
	gen              uint64     // framed: the generation of v it holds (see staleGen)
	heard            stamp      // when the client last sent bytes (or connected)
	readDeadlineSet  stamp      // when the read deadline was last moved
	writeDeadlineSet stamp      // when the write deadline was last moved
	parkAfter        time.Duration
	w                *watcher // a watch connection's state; nil otherwise
	started          bool     // the first bytes have come: classic or framed is decided
	framed           bool
}

// ServeConn implements server.Handler: it serves one client until it
// leaves, is dropped, or ctx ends.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.init()
	leave, err := s.Store.Join(ctx)
	if err != nil {
		s.log.Warn("cannot count client; dropping it", "client", clientAddr{nc}, "err", err)
		return
	}
	if s.joined.Add(1) >= int64(s.WaitFor) {
		s.gated.Do(func() {
			select {
			case <-s.gate:
			default:
				close(s.gate)
			}
		})
	}
	s.log.Debug("client joined", "client", clientAddr{nc})
	c := &conn{s: s, c: nc, leave: leave}
	select {
	case <-s.gate:
	case <-ctx.Done():
		c.end(nil)
		return
	}
	c.heard = stampOf(time.Now())
	c.parkAfter = server.ParkAfter(ctx, nc)
	c.serve(ctx, nc)
}

// clientAddr logs a client's address, formatted only when the record is
// written.
type clientAddr struct{ c net.Conn }

func (a clientAddr) LogValue() slog.Value { return slog.StringValue(a.c.RemoteAddr().String()) }

// serve reads the client's bytes and answers them until the client has
// been silent for ParkAfter (a person thinking, a watcher waiting for
// changes); then it parks the connection, and the server calls serve again
// when the client sends more. While parked, a client costs this struct
// and, a second or two later, not even a net.Conn, watchers included:
// see park. When the client leaves or is dropped, serve ends the
// connection.
func (c *conn) serve(ctx context.Context, nc net.Conn) {
	if c.c != nc {
		// Back from parking: perhaps a new net.Conn for the same socket
		// (it was bare), with no deadline set on it yet. Under c.mu: a
		// watcher's writer tells by c.c how to write (see write).
		c.mu.Lock()
		c.c, c.writeDeadlineSet = nc, 0
		c.mu.Unlock()
	}
	// A client that has not spoken yet is parked at once: its first
	// bytes may be a person's first letter, seconds away.
	if !c.started && c.parkAfter > 0 && c.park(ctx) {
		return
	}
	for {
		err := c.turn(ctx)
		if err != errSilent {
			c.end(err)
			return
		}
		if c.park(ctx) {
			return
		}
	}
}

// park parks c's connection until its client sends more (server.Park),
// reporting whether it did; serve must then return at once. Every
// client's connection is parked with server.ParkSocket, which after a
// second or two more of silence keeps the socket alone, as a bare
// descriptor: c lets go of its net.Conn while parked, and serve may be
// called with a new one for the same socket. A typist's connection is
// written to by its own turns only; a watcher's is written to by the
// watchers' writer too, which finds c.c nil (under c.mu) and writes
// through the server instead (see write).
func (c *conn) park(ctx context.Context) bool {
	nc := c.c
	c.mu.Lock()
	c.c = nil
	c.mu.Unlock()
	if server.ParkSocket(ctx, nc, c.idleDeadline(), c.serve) {
		return true
	}
	c.mu.Lock()
	c.c = nc
	c.mu.Unlock()
	return false
}

// end is the end of the client's connection, for the reason err (nil: it
// left).
func (c *conn) end(err error) {
	if c.w != nil {
		c.s.watchers.leave(c)
		c.s.watch.Add(-1)
	}
	if err != nil {
		c.s.log.Info("client dropped", "client", clientAddr{c.c}, "err", err)
	}
	c.s.log.Debug("client left", "client", clientAddr{c.c})
	c.leave()
}

// Configure implements server.Configurer: the caps and manners of the
// server.Server that serves s, where the caller left them zero.
//
//   - MaxConns: DefaultMaxConns.
//   - MaxConnsPerAddr: a quarter of MaxConns, and at least WaitFor, so
//     that the tutorial's gathering, which may well be all on one
//     machine, is never shut out. A client over a cap is refused at once:
//     an 'e' frame for a framed client, the line "busy: ..." for a
//     classic one (Refuse).
//   - UserTimeout: one that lets a watcher that pauses last WriteTimeout.
//   - Grace: none. Every letter is answered as it comes: nothing in
//     flight is worth a grace period, and v is printed right after.
//   - ParkAfter: the Server's.
//   - Logger: the Server's.
func (s *Server) Configure(srv *server.Server) {
	s.init()
	if srv.MaxConns == 0 {
		srv.MaxConns = DefaultMaxConns
	}
	if srv.MaxConnsPerAddr == 0 && s.WaitFor > 0 {
		srv.MaxConnsPerAddr = max(1, srv.MaxConns/4, s.WaitFor)
	}
	if srv.Refuse == nil {
		srv.Refuse = s.refuse
	}
	if srv.UserTimeout == 0 {
		srv.UserTimeout = server.UserTimeoutFor(s.writeTimeout())
	}
	if srv.Grace == 0 {
		srv.Grace = -1
	}
	if srv.ParkAfter == 0 {
		srv.ParkAfter = s.ParkAfter
	}
	if srv.Logger == nil {
		srv.Logger = s.log
	}
	s.slots = srv.MaxConns
}

// Validate implements server.Validator: it checks s's fields, some
// against srv's caps, and names the first that is out of range.
func (s *Server) Validate(srv *server.Server) error {
	slots := srv.MaxConns
	if slots == 0 {
		slots = DefaultMaxConns
	}
	switch {
	case s.WaitFor < 0:
		return server.Invalid("{WaitFor} must be at least 0, not %d", s.WaitFor)
	case s.WaitFor > slots:
		return server.Invalid("{WaitFor} (%d) must not exceed {MaxConns} (%d): the gathering could never be complete", s.WaitFor, slots)
	case s.MaxWatchers < 0:
		return server.Invalid("{MaxWatchers} must be at least 1, not %d", s.MaxWatchers)
	case s.MaxWatchers >= slots:
		return server.Invalid("{MaxWatchers} (%d) must be below {MaxConns} (%d): watchers never time out, so they could hold every slot", s.MaxWatchers, slots)
	case s.MaxValue < 0:
		return server.Invalid("{MaxValue} must be at least 1, not %d", s.MaxValue)
	case s.WriteTimeout < 0:
		return server.Invalid("{WriteTimeout} must be positive, not %s", s.WriteTimeout)
	}
	return nil
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return DefaultWriteTimeout
}

// readTimeout is ReadTimeout resolved; 0: none.
func (s *Server) readTimeout() time.Duration {
	return server.Setting(s.ReadTimeout, DefaultReadTimeout)
}

func (s *Server) maxValue() int {
	if s.MaxValue > 0 {
		return s.MaxValue
	}
	return DefaultMaxValue
}

func (s *Server) maxWatchers() int {
	if s.MaxWatchers > 0 {
		return s.MaxWatchers
	}
	slots := s.slots
	if slots <= 0 {
		slots = DefaultMaxConns
	}
	return max(1, slots/4)
}

var errValueFull = store.ErrFull

// errSilent ends a turn: the client has sent nothing for ParkAfter.
var errSilent = errors.New("silent for a while")

// scratch is what a turn reads into and builds its replies in: only a
// client that is talking holds one.
type scratch struct {
	buf  []byte   // what is read
	bufs [][]byte // for writev
	hdrs []byte   // frame headers
}

var scratches = sync.Pool{New: func() any { return &scratch{buf: make([]byte, readChunk)} }}

// stamp is a time in a field kept while a client is parked: 8 bytes where
// a time.Time takes 24. It is Unix nanoseconds; 0 is the zero time.
type stamp int64

func stampOf(t time.Time) stamp {
	if t.IsZero() {
		return 0
	}
	return stamp(t.UnixNano())
}

func (s stamp) Time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(s))
}

// turn reads letters and answers them until the client has been silent
// for ParkAfter (errSilent), leaves (nil) or must be dropped (the reason).
func (c *conn) turn(ctx context.Context) error {
	c.sc = scratches.Get().(*scratch)
	defer func() {
		scratches.Put(c.sc)
		c.sc = nil
	}()
	buf := c.sc.buf
	turnStart := time.Now()
	c.setReadDeadline(turnStart, turnStart)
	for {
		var n int
		var err error
		if c.started {
			n, err = c.c.Read(buf)
		} else {
			var flags byte
			var framed bool
			n, flags, framed, err = c.readFirst(buf)
			if n > 0 {
				c.started = true
				if framed {
					if err := c.helloed(ctx, flags); err != nil {
						return err
					}
					// The bytes after the hello are letters.
					n = copy(buf, buf[HelloLen:n])
				}
				// The hello's short deadline ends; a watcher has none.
				now := time.Now()
				c.heard = stampOf(now)
				c.setReadDeadline(now, turnStart)
			}
		}
		if n > 0 {
			now := time.Now()
			c.heard = stampOf(now)
			c.refreshReadDeadline(now, turnStart)
			if err := c.letters(ctx, buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if err := c.silence(time.Now(), turnStart); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return readErr(err)
		}
	}
}

// helloed serves a framed client's hello: a watcher over the cap is
// refused, any other gets the 'h' frame, and a watcher is signed up for
// changes of v.
func (c *conn) helloed(ctx context.Context, flags byte) error {
	c.framed = true
	watch := flags&FlagWatch != 0
	if watch {
		limit := c.s.maxWatchers()
		if c.s.watch.Add(1) > int64(limit) {
			c.s.watch.Add(-1)
			msg := fmt.Sprintf("too many watchers: this server serves at most %d at once", limit)
			c.refuse(msg)
			return errors.New(msg)
		}
		c.w = &watcher{}
	}
	if err := c.hello(); err != nil {
		return err
	}
	if watch {
		c.s.watchers.join(ctx, c)
	}
	return nil
}

// silence is what a read timeout at now means: the client sent nothing
// for the read timeout (an error that drops it), or for ParkAfter
// (errSilent); otherwise (nil) the deadline moved on meanwhile, and is set
// anew.
func (c *conn) silence(now, turnStart time.Time) error {
	if idle := c.readIdle(); idle > 0 && now.Sub(c.heard.Time()) >= idle-idle/16 {
		return errors.New("idle: sent nothing for the read timeout")
	}
	if c.parkAfter > 0 && !now.Before(c.readDeadline(turnStart).Add(-c.parkAfter/16)) {
		return errSilent
	}
	c.setReadDeadline(now, turnStart)
	return nil
}

// readIdle is the read timeout that applies to c: none for a watcher,
// since waiting is what watchers do.
func (c *conn) readIdle() time.Duration {
	if c.w != nil {
		return 0
	}
	return c.s.readTimeout()
}

// idleDeadline is when c is dropped if the client stays silent; the zero
// time if never.
func (c *conn) idleDeadline() time.Time {
	if idle := c.readIdle(); idle > 0 {
		return c.heard.Time().Add(idle)
	}
	return time.Time{}
}

// readDeadline is the read deadline for a turn that began at turnStart:
// the read timeout after the client's last bytes, or ParkAfter after
// those or the turn's start, whichever comes first.
func (c *conn) readDeadline(turnStart time.Time) time.Time {
	d := c.idleDeadline()
	if c.parkAfter > 0 {
		quiet := c.heard.Time()
		if turnStart.After(quiet) {
			quiet = turnStart
		}
		if q := quiet.Add(c.parkAfter); d.IsZero() || q.Before(d) {
			d = q
		}
	}
	return d
}

func (c *conn) setReadDeadline(now, turnStart time.Time) {
	c.c.SetReadDeadline(c.readDeadline(turnStart))
	c.readDeadlineSet = stampOf(now)
}

// refreshReadDeadline moves the read deadline after bytes came, unless it
// was moved less than a sixteenth of the shorter limit ago: a busy client
// does not move a timer for every read, and the limits hold to within a
// sixteenth.
func (c *conn) refreshReadDeadline(now, turnStart time.Time) {
	limit := c.readIdle()
	if c.parkAfter > 0 && (limit == 0 || c.parkAfter < limit) {
		limit = c.parkAfter
	}
	if limit == 0 || now.Sub(c.readDeadlineSet.Time()) < limit/16 {
		return
	}
	c.setReadDeadline(now, turnStart)
}

// readErr turns the error that ended a client's reads into the reason it
// left: nil for a close.
func readErr(err error) error {
	if errors.Is(err, net.ErrClosed) || isEOF(err) {
		return nil
	}
	return err
}

// readFirst reads the first bytes of a connection and tells a framed-mode
// hello from letters (see the package comment).
func (c *conn) readFirst(buf []byte) (n int, flags byte, framed bool, err error) {
	n, err = c.c.Read(buf)
	if n == 0 || buf[0] != magic[0] {
		return n, 0, false, err
	}
	deadline := time.Now().Add(HelloWait)
	for err == nil {
		full, f, partial := helloMatch(buf[:n])
		if full {
			return n, f, true, nil
		}
		if !partial {
			return n, 0, false, nil
		}
		c.c.SetReadDeadline(deadline)
		var m int
		m, err = c.c.Read(buf[n:])
		n += m
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, 0, false, nil // a classic client that began with 0xFF
		}
	}
	return n, 0, false, err
}

// letters appends p to v and answers every byte.
func (c *conn) letters(ctx context.Context, p []byte) error {
	v, gen, err := c.appendLetters(ctx, p)
	if err != nil {
		return c.notStored(ctx, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.framed && c.staleGen(gen) {
		return c.endReset(len(v), true)
	}
	bufs := c.sc.bufs[:0]
	first := len(v) - len(p) + 1
	if !c.framed {
		// Classic: v after each byte, back to back; prefixes of one v.
		for i := first; i <= len(v); i++ {
			bufs = append(bufs, v[:i])
		}
	} else {
		// One header per byte; the data is what the client lacks. A
		// header slice taken before hdrs grows keeps its bytes.
		hdrs := c.sc.hdrs[:0]
		for i := first; i <= len(v); i++ {
			d := max(0, i-c.have)
			at := len(hdrs)
			hdrs = appendFrameHeader(hdrs, KindReply, uint64(i), uint32(d))
			bufs = append(bufs, hdrs[at:])
			if d > 0 {
				bufs = append(bufs, v[c.have:i])
				c.have = i
			}
		}
		c.sc.hdrs = hdrs
	}
	c.sc.bufs = bufs[:0]
	return c.write(bufs)
}

// appendLetters appends p to v within MaxValue: as one step in a
// store.Capped, else checked first against the longest v seen. It returns
// v's generation too (always 0 but for a store.Generational).
func (c *conn) appendLetters(ctx context.Context, p []byte) ([]byte, uint64, error) {
	s := c.s
	if s.capped != nil {
		v, err := s.capped.AppendCapped(ctx, p, s.maxValue())
		return v, 0, err
	}
	if s.size.Load()+int64(len(p)) > int64(s.maxValue()) {
		return nil, 0, errValueFull
	}
	v, gen, err := s.appendGen(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	for {
		old := s.size.Load()
		if int64(len(v)) <= old || s.size.CompareAndSwap(old, int64(len(v))) {
			break
		}
	}
	return v, gen, nil
}

// refuse sends an 'e' frame carrying msg in place of the 'h' frame; the
// caller then closes the connection.
func (c *conn) refuse(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendError(msg)
}

// hello answers a framed-mode hello.
func (c *conn) hello() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.write([][]byte{appendFrameHeader(nil, KindHello, 0, 0)})
}

// joinMax is the most bytes write joins into one buffer rather than
// write them with writev; joined holds the buffers it joins them in.
const joinMax = 4096

var joined = sync.Pool{New: func() any { b := make([]byte, 0, joinMax); return &b }}

func buffersLen(nb net.Buffers) int {
	n := 0
	for _, b := range nb {
		n += len(b)
	}
	return n
}

// refresh sets a deadline idle from now unless it was set less than
// idle/16 ago (at last), so a busy connection does not move a timer for
// every letter; the limit then holds to within a sixteenth.
func refresh(set func(time.Time) error, last time.Time, idle time.Duration) time.Time {
	now := time.Now()
	if now.Sub(last) < idle/16 {
		return last
	}
	set(now.Add(idle))
	return now
}

// write writes bufs with one writev where it can, giving the client
// WriteTimeout to make progress each time, so a slow reader finishes and one
// that stopped reading is dropped.
func (c *conn) write(bufs [][]byte) error {
	idle := c.s.writeTimeout()
	if c.c == nil {
		return c.writeParked(bufs, idle)
	}
	bufs, jp := joinSmall(bufs)
	if jp != nil {
		defer joined.Put(jp)
	}
	nb := net.Buffers(bufs)
	for {
		c.writeDeadlineSet = stampOf(refresh(c.c.SetWriteDeadline, c.writeDeadlineSet.Time(), idle))
		var n int64
		var err error
		if len(nb) == 1 {
			// One buffer (a classic reply to one letter, an 'h' frame):
			// a write, which unlike writev keeps no iovec array on the
			// connection for as long as it lives.
			var m int
			m, err = c.c.Write(nb[0])
			nb[0] = nb[0][m:]
			n = int64(m)
		} else {
			n, err = nb.WriteTo(c.c)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if n > 0 {
				continue // slow, not stopped
			}
			// Up to the send buffer (megabytes) is still queued for a
			// peer that reads nothing: drop it with a reset when the
			// connection closes, not from an orphaned socket for minutes.
			tcpsock.Reset(c.c)
			return errors.New("not reading: no reply bytes accepted for the write timeout")
		}
		return err
	}
}

// writeParked is write for a watcher whose handler has parked it (c.c is
// nil; c.mu is held): through the server, which holds the socket, perhaps
// as a bare descriptor (server.Write). A client that takes no bytes for
// the write timeout is interrupted with a reset, as write resets one.
func (c *conn) writeParked(bufs [][]byte, idle time.Duration) error {
	bufs, jp := joinSmall(bufs) // a frame's header and data: one send
	if jp != nil {
		defer joined.Put(jp)
	}
	for _, p := range bufs {
		if _, err := server.Write(c.w.ctx, p, idle); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				server.InterruptServed(c.w.ctx, true)
				return errors.New("not reading: no reply bytes accepted for the write timeout")
			}
			return err
		}
	}
	return nil
}

// joinSmall joins a few small buffers (a framed reply: header and data; a
// watcher's update) into one, from the joined pool, so that they go with
// one write: writev would leave its iovec array on the connection for as
// long as it lives, parked or not. It returns bufs as they are (and nil)
// when there is one, or they are larger than joinMax together; otherwise
// the joined buffer and its pool entry, for the caller to Put back.
func joinSmall(bufs [][]byte) ([][]byte, *[]byte) {
	if len(bufs) <= 1 || buffersLen(bufs) > joinMax {
		return bufs, nil
	}
	jp := joined.Get().(*[]byte)
	j := (*jp)[:0]
	for _, b := range bufs {
		j = append(j, b...)
	}
	*jp = j
	return [][]byte{j}, jp
}

var (
	_ server.Handler    = (*Server)(nil)
	_ server.Finisher   = (*Server)(nil)
	_ server.Configurer = (*Server)(nil)
	_ server.Validator  = (*Server)(nil)
)
