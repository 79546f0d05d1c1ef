package sharedstring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/store"
)

// Defaults for the Server's limits.
const (
	DefaultWriteIdle = 10 * time.Second
	DefaultReadIdle  = 30 * time.Minute
	// DefaultMaxConns caps the clients served at once. A client may sit
	// idle for up to the read timeout (a watcher for ever), so the cap,
	// not the timeouts, is what keeps a crowd of idle connections from
	// holding the process; 1,000 is also what tms --keep uses.
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
)

// Server is the shared-string server: strsvr. Set Store, then call Serve
// (and ServeDiscovery, for framed mode); WaitEmpty tells when the last
// client has left. Fields must not change after Serve is called.
type Server struct {
	// Store holds v and counts the clients.
	Store store.Store

	// WaitFor makes the server hold every client until this many have
	// connected, as the tutorial's does with nc = 2. Zero or one: serve
	// each client as it comes.
	WaitFor int

	// WriteIdle drops a client whose connection accepts no reply bytes for
	// this long (to within a sixteenth): a client that stops reading is
	// disconnected, never buffered for. Zero means DefaultWriteIdle.
	WriteIdle time.Duration

	// ReadIdle drops a client that sends nothing for this long, to within
	// a sixteenth (watchers excepted: waiting is what they are for). Zero means DefaultReadIdle;
	// negative means never.
	ReadIdle time.Duration

	// MaxValue bounds v: a client whose letters would grow v beyond it is
	// disconnected. Zero means DefaultMaxValue. With a store.Capped store
	// (Memory, File) the bound is exact: the check is part of the append.
	// With another store (Redis) the check comes before the append and
	// counts only the v this server has seen, so v can overshoot by at most
	// one read (4 KiB) per client of the group appending at that moment.
	MaxValue int

	// MaxConns caps the clients served at once (see server.Server). Zero
	// means DefaultMaxConns.
	MaxConns int

	// MaxConnsPerAddr caps the clients served at once from one address
	// (an IPv6 /64); a client over it, or over MaxConns, is refused at
	// once: an 'e' frame for a framed client, the line "busy: ..." for a
	// classic one. Zero means a quarter of MaxConns; negative, no cap (see
	// server.Server).
	MaxConnsPerAddr int

	// MaxWatchers caps the watch connections served at once; they count
	// towards MaxConns too. A watcher over the cap gets an 'e' frame
	// saying so instead of the 'h' frame, and is closed. Zero means a
	// quarter of MaxConns (at least 1), DefaultMaxWatchers by default.
	MaxWatchers int

	// Logger receives connection events. Nil discards.
	Logger *slog.Logger

	once    sync.Once
	srv     *server.Server
	gate    chan struct{} // closed once WaitFor clients have joined
	gated   sync.Once
	joined  atomic.Int64 // clients that ever joined
	size    atomic.Int64 // the longest v seen, for MaxValue (not Capped stores)
	capped  store.Capped // Store, if it checks MaxValue itself
	watch   atomic.Int64 // watch connections now
	mu      sync.Mutex
	packets []net.PacketConn
	closed  bool

	gens store.Generational // Store, if it can lose v and begin again
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.gate = make(chan struct{})
		if s.WaitFor <= 1 {
			close(s.gate)
		}
		s.capped, _ = s.Store.(store.Capped)
		s.gens, _ = s.Store.(store.Generational)
		maxConns := s.MaxConns
		if maxConns <= 0 {
			maxConns = DefaultMaxConns
		}
		s.srv = &server.Server{Handler: server.HandlerFunc(s.handle), MaxConns: maxConns, MaxConnsPerAddr: s.MaxConnsPerAddr,
			Refuse: s.refuse, Logger: s.Logger,
			// A watcher that pauses is dropped by WriteIdle, not before.
			UserTimeout: server.UserTimeoutFor(s.writeIdle())}
	})
}

// Serve accepts clients on ln until Close; it returns server.ErrServerClosed
// after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	return s.srv.Serve(ln)
}

// ServeDiscovery answers framed-mode probes arriving on pc (UDP, on the same
// port number as the TCP listener) until Close. Anything that is not a
// probe is ignored; an answer is never larger than its probe.
func (s *Server) ServeDiscovery(pc net.PacketConn) error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		return server.ErrServerClosed
	}
	s.packets = append(s.packets, pc)
	s.mu.Unlock()
	buf := make([]byte, 64)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return server.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors from earlier answers surface here on some
			// systems; they concern one peer, not the listener.
			s.Logger.Debug("discovery read", "err", err)
			time.Sleep(time.Millisecond)
			continue
		}
		if ans := answerProbe(buf[:n]); ans != nil {
			pc.SetWriteDeadline(time.Now().Add(time.Second))
			pc.WriteTo(ans, addr)
		}
	}
}

// Close closes the discovery sockets and every client connection, and
// waits for the handlers to return. It does not close the Store.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for _, pc := range s.packets {
		pc.Close()
	}
	s.mu.Unlock()
	return s.srv.Close()
}

// ActiveConns reports how many clients this server is serving now.
func (s *Server) ActiveConns() int {
	s.init()
	return s.srv.ActiveConns()
}

// WaitEmpty returns nil once the group of clients sharing the Store has
// become empty after at least one client came (and after the WaitFor
// clients have gathered): the moment the tutorial's server prints v and
// exits. It is driven by Store.Changes and Store.Clients, so for a store
// shared by several servers it waits for the whole group.
func (s *Server) WaitEmpty(ctx context.Context) error {
	s.init()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := s.Store.Changes(ctx)
	if err != nil {
		return err
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
			return err
		}
		if n > 0 {
			seen = true
		}
		if gate == nil && n == 0 && (seen || s.joined.Load() > 0) {
			return nil
		}
		select {
		case _, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return store.ErrClosed
			}
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		// Changes fire for every letter too, not only for joins and
		// leaves. Looking at most every emptyCheckEvery keeps this
		// goroutine (and, for a shared store, a Clients round trip) off
		// the path of each letter; signals meanwhile are coalesced.
		select {
		case <-time.After(emptyCheckEvery):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// emptyCheckEvery bounds how often WaitEmpty counts the clients, and so how
// late after the last client leaves the server notices.
const emptyCheckEvery = 10 * time.Millisecond

// conn is one client's connection as the handler sees it.
type conn struct {
	s      *Server
	c      net.Conn
	ctx    context.Context
	log    *slog.Logger
	mu     sync.Mutex // serialises writes (replies and watch updates)
	bufs   [][]byte   // scratch for writev
	hdrs   []byte     // scratch for frame headers
	have   int        // framed: how much of v the client holds
	gen    uint64     // framed: the generation of v it holds (see staleGen)
	rdl    time.Time  // when the read deadline was last set
	wdl    time.Time  // when the write deadline was last set
	framed bool
}

func (s *Server) handle(ctx context.Context, nc net.Conn) {
	log := s.Logger.With("client", nc.RemoteAddr().String())
	leave, err := s.Store.Join(ctx)
	if err != nil {
		log.Warn("cannot count client; dropping it", "err", err)
		return
	}
	defer leave()
	if s.joined.Add(1) >= int64(s.WaitFor) {
		s.gated.Do(func() {
			select {
			case <-s.gate:
			default:
				close(s.gate)
			}
		})
	}
	log.Debug("client joined")
	defer log.Debug("client left")
	select {
	case <-s.gate:
	case <-ctx.Done():
		return
	}
	c := &conn{s: s, c: nc, ctx: ctx, log: log}
	if err := c.serve(); err != nil {
		log.Info("client dropped", "err", err)
	}
}

func (s *Server) writeIdle() time.Duration {
	if s.WriteIdle > 0 {
		return s.WriteIdle
	}
	return DefaultWriteIdle
}

func (s *Server) readIdle() time.Duration {
	if s.ReadIdle == 0 {
		return DefaultReadIdle
	}
	return s.ReadIdle
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
	return max(1, s.srv.MaxConns/4) // MaxConns as init resolved it
}

var errValueFull = store.ErrFull

// serve reads letters until the client leaves. It returns nil for a client
// that closed its connection, and the reason otherwise.
func (c *conn) serve() error {
	buf := make([]byte, readChunk)
	n, flags, framed, err := c.readFirst(buf)
	if framed {
		c.framed = true
		if flags&FlagWatch != 0 {
			limit := c.s.maxWatchers()
			if c.s.watch.Add(1) > int64(limit) {
				c.s.watch.Add(-1)
				msg := fmt.Sprintf("too many watchers: this server serves at most %d at once", limit)
				c.refuse(msg)
				return errors.New(msg)
			}
			defer c.s.watch.Add(-1)
		}
		if err := c.hello(); err != nil {
			return err
		}
		if flags&FlagWatch != 0 {
			ctx, cancel := context.WithCancel(c.ctx)
			done := make(chan struct{})
			go func() { defer close(done); c.watch(ctx) }()
			defer func() { cancel(); <-done }()
		}
		// The bytes after the hello are letters.
		n = copy(buf, buf[HelloLen:n])
	}
	watching := framed && flags&FlagWatch != 0
	if watching || c.s.readIdle() < 0 {
		// Waiting is what watchers do; and with no read timeout at all,
		// the hello's short deadline that readFirst may have set must
		// not outlive it.
		c.c.SetReadDeadline(time.Time{})
	}
	for {
		if n > 0 {
			if err := c.letters(buf[:n]); err != nil {
				return err
			}
		}
		if err != nil {
			return readErr(err)
		}
		if idle := c.s.readIdle(); idle > 0 && !watching {
			c.rdl = refresh(c.c.SetReadDeadline, c.rdl, idle)
		}
		n, err = c.c.Read(buf)
	}
}

// readErr turns the error that ended a client's reads into the reason it
// left: nil for a close.
func readErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.New("idle: sent nothing for the read timeout")
	}
	if errors.Is(err, net.ErrClosed) || isEOF(err) {
		return nil
	}
	return err
}

// readFirst reads the first bytes of a connection and tells a framed-mode
// hello from letters (see the package comment).
func (c *conn) readFirst(buf []byte) (n int, flags byte, framed bool, err error) {
	if idle := c.s.readIdle(); idle > 0 {
		c.c.SetReadDeadline(time.Now().Add(idle))
	}
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
func (c *conn) letters(p []byte) error {
	v, gen, err := c.appendLetters(p)
	if err != nil {
		return c.notStored(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.framed && c.staleGen(gen) {
		return c.endReset(len(v), true)
	}
	bufs := c.bufs[:0]
	first := len(v) - len(p) + 1
	if !c.framed {
		// Classic: v after each byte, back to back; prefixes of one v.
		for i := first; i <= len(v); i++ {
			bufs = append(bufs, v[:i])
		}
	} else {
		// One header per byte; the data is what the client lacks. A
		// header slice taken before hdrs grows keeps its bytes.
		hdrs := c.hdrs[:0]
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
		c.hdrs = hdrs
	}
	c.bufs = bufs[:0]
	return c.write(bufs)
}

// appendLetters appends p to v within MaxValue: as one step in a
// store.Capped, else checked first against the longest v seen. It returns
// v's generation too (always 0 but for a store.Generational).
func (c *conn) appendLetters(p []byte) ([]byte, uint64, error) {
	s := c.s
	if s.capped != nil {
		v, err := s.capped.AppendCapped(c.ctx, p, s.maxValue())
		return v, 0, err
	}
	if s.size.Load()+int64(len(p)) > int64(s.maxValue()) {
		return nil, 0, errValueFull
	}
	v, gen, err := s.appendGen(c.ctx, p)
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
	if len(msg) > MaxErrorLen {
		msg = msg[:MaxErrorLen]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write([][]byte{appendFrameHeader(nil, KindError, 0, uint32(len(msg))), []byte(msg)})
}

// hello answers a framed-mode hello.
func (c *conn) hello() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.write([][]byte{appendFrameHeader(nil, KindHello, 0, 0)})
}

// watch sends a 'w' frame whenever v has grown beyond what the client
// holds, until ctx ends.
func (c *conn) watch(ctx context.Context) {
	changes, err := c.s.Store.Changes(ctx)
	if err != nil {
		return
	}
	for {
		v, gen, err := c.s.valueGen(ctx)
		if err != nil {
			return
		}
		c.mu.Lock()
		if gen < c.gen {
			v = nil // an answer overtaken by a reset: wait for the next
		} else if c.staleGen(gen) {
			c.endReset(len(v), false)
			c.mu.Unlock()
			c.c.Close() // unblocks the reader
			return
		}
		if len(v) > c.have {
			hdr := appendFrameHeader(nil, KindUpdate, uint64(len(v)), uint32(len(v)-c.have))
			err = c.write([][]byte{hdr, v[c.have:]})
			c.have = len(v)
		}
		c.mu.Unlock()
		if err != nil {
			c.c.Close() // unblocks the reader: the client is gone
			return
		}
		if _, ok := <-changes; !ok {
			return
		}
	}
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
// WriteIdle to make progress each time, so a slow reader finishes and one
// that stopped reading is dropped.
func (c *conn) write(bufs [][]byte) error {
	idle := c.s.writeIdle()
	nb := net.Buffers(bufs)
	for {
		c.wdl = refresh(c.c.SetWriteDeadline, c.wdl, idle)
		n, err := nb.WriteTo(c.c)
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
			endpoint.Reset(c.c)
			return errors.New("not reading: no reply bytes accepted for the write timeout")
		}
		return err
	}
}
