package server

import (
	"container/heap"
	"context"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Parking: what a silent connection costs.
//
// A connection whose handler waits for its client in a Read holds a
// goroutine (its stack: 2 to 8 KiB, never less than the deepest call the
// handler made before) and whatever buffer the Read fills (strsvr: 4 KiB),
// for as long as the client says nothing: a person thinking at a prompt, a
// watcher of a value that does not change, a client that connected and
// has not sent its request. That was 7 KB a connection, five times what
// redis-server spends (docs/reliability.md, "Memory per idle connection").
//
// So a handler that would wait parks the connection instead (Park) and
// returns: its goroutine ends and its buffers go back to their pools. The
// server watches every parked connection's socket in one readiness set
// (epoll, with one goroutine for all of them) and, when the client sends
// bytes or closes, or the deadline the handler gave passes, or the server
// closes, calls the function the handler named on a new goroutine, as it
// called ServeConn. A parked connection keeps its slot, its socket and the
// protocol's own state (what the handler's closure holds), nothing else.
//
// A connection that only its handler holds a net.Conn of (one that has
// not spoken yet, a strsvr typist between turns, a strsvr watcher, whose
// frames are written with Write) can be parked as a bare socket
// (ParkSocket): the server keeps a copy of its descriptor and closes the
// net.Conn, whose share of Go's runtime and net (poll descriptor,
// finalizer, netFD, addresses: about 870 bytes) is most of what a parked
// connection costs otherwise.
//
// Parking and waking cost a few system calls and a goroutine, so a
// handler that serves a conversation (strsvr) keeps its goroutine while
// the client is talking and parks only after ParkAfter of silence: the
// letters of a client typing, or of a benchmark, never see it.

// DefaultParkAfter is Server.ParkAfter's default.
const DefaultParkAfter = time.Second

// Park hands conn back to the server until its client sends bytes (or
// closes, or the connection fails), until deadline passes (the zero time:
// no deadline), or until the server closes. Then the server calls
// next(ctx, conn) on a goroutine of its own, as it called ServeConn; conn
// is readable, or next's first read fails at once (the deadline, if next
// sets it as its read deadline, has passed; or conn is closed). Until then
// conn holds its slot but no goroutine, stack or buffer.
//
// Park reports true when it took conn: the handler must return at once and
// not touch conn again (next owns it), and the server does not close conn
// when the handler returns. It reports false, taking nothing, when conn is
// readable already, or cannot be parked: conn is not served by a Server
// (ctx is not the handler's; a test calling ServeConn directly), is not a
// socket, the system has no epoll, the server is closing, or deadline has
// passed. The handler then goes on with conn itself, reading as it would
// have.
//
// While conn is parked only the server may close it: code elsewhere that
// must end the connection (a writer that failed) calls Interrupt (or
// InterruptServed) instead.
func Park(ctx context.Context, conn net.Conn, deadline time.Time, next HandlerFunc) bool {
	return park(ctx, conn, deadline, next, false)
}

// ParkSocket is Park for a connection that nothing but its handler holds a
// net.Conn of (one that has not sent its first bytes yet, one whose
// handler alone answers it, one that code elsewhere writes to with Write):
// if it stays silent for a second or two, the server keeps its socket
// alone, as a bare file descriptor, and closes conn, so that it holds none
// of Go's state for a connection either (the runtime's poll descriptor
// with its deadline timers, the finalizer, net's netFD and addresses:
// about 870 bytes). next may then be called with a new net.Conn for the
// same socket, of the same type, with the same socket options and the
// server's keep-alive: the handler must keep no reference to conn (a
// field, a closure, a watcher's writer) and serve next's argument. Code
// elsewhere writes to the connection with Write and ends it with
// InterruptServed, through the handler's context; Interrupt, given conn,
// cannot reach it once bare. The server's own stops (Close, making room)
// do. A client that speaks sooner keeps conn (detaching and back costs
// about a dozen system calls). When conn is not a *net.TCPConn, or its
// descriptor cannot be copied (out of descriptors), it is parked as by
// Park, and next is given conn itself.
func ParkSocket(ctx context.Context, conn net.Conn, deadline time.Time, next HandlerFunc) bool {
	_, isTCP := conn.(*net.TCPConn)
	_, tracked := ctx.Value(trackedKey{}).(*tracked)
	return park(ctx, conn, deadline, next, isTCP && tracked)
}

func park(ctx context.Context, conn net.Conn, deadline time.Time, next HandlerFunc, bare bool) bool {
	s, _ := ctx.Value(serverKey{}).(*Server)
	if s == nil || next == nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
		return false
	}
	fd, ok := socketFD(conn)
	if !ok || !s.parker.available() || readableNow(fd) {
		return false
	}
	pk := &parked{ctx: ctx, conn: conn, fd: int32(fd), next: next, index: -1, detachable: bare}
	if !deadline.IsZero() {
		pk.deadline = deadline.UnixNano()
	}
	return s.parker.hold(pk)
}

// ParkAfter is how long the handler serving conn under ctx should wait for
// its client on its own goroutine before it parks conn (Server.ParkAfter),
// or zero when conn cannot be parked: the handler then waits in its Read
// as it would have, with no reason to wake up earlier.
func ParkAfter(ctx context.Context, conn net.Conn) time.Duration {
	s, _ := ctx.Value(serverKey{}).(*Server)
	if s == nil || s.ParkAfter < 0 {
		return 0
	}
	if _, ok := socketFD(conn); !ok || !s.parker.available() {
		return 0
	}
	if s.ParkAfter == 0 {
		return DefaultParkAfter
	}
	return s.ParkAfter
}

// Interrupt makes the handler of conn stop waiting for its client: a Read
// blocked on conn returns (end of file), and a parked conn is woken, its
// next function finding the end of file at once. The handler then ends the
// connection as it does when the client leaves. It is how code other than
// the handler (a writer that failed) ends a connection that may be parked,
// where closing conn would leave the parked handler waiting for ever.
func Interrupt(conn net.Conn) {
	if cr, ok := conn.(interface{ CloseRead() error }); ok {
		// shutdown(SHUT_RD) wakes every waiter on the socket, the
		// runtime's poller and the parking set alike, and frees nothing:
		// the file descriptor stays the handler's to close. Its error is
		// not a reason to close instead: on a socket its peer reset
		// (ENOTCONN) the kernel still marks it shut and wakes every waiter,
		// and closing a parked socket would take it out of the set with
		// the wake-up the reset queued there, never to be handed back.
		cr.CloseRead()
		return
	}
	conn.Close()
}

// Parked reports how many connections are parked now.
func (s *Server) Parked() int {
	s.parker.mu.Lock()
	defer s.parker.mu.Unlock()
	return s.parker.count
}

// ParkedBare reports how many of them are parked as bare sockets now
// (ParkSocket).
func (s *Server) ParkedBare() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for t := range s.conns {
		if t.bare != nil {
			n++
		}
	}
	return n
}

type serverKey struct{}

// socketFD is conn's file descriptor, if it is a socket.
func socketFD(conn net.Conn) (int, bool) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if raw.Control(func(f uintptr) { fd = int(f) }) != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

// parked is a connection the server holds for its handler: 64 bytes.
type parked struct {
	ctx      context.Context // the handler's: next is called with it
	conn     net.Conn        // nil while parked as a bare socket
	next     HandlerFunc
	deadline int64  // Unix nanoseconds; 0: none
	fd       int32  // a file descriptor is a C int
	seq      uint32 // tells this parking from an earlier one of the same fd
	index    int32  // in parker.timers; -1 when not there
	// detachable: parked by ParkSocket, to be made a bare socket once it
	// has been parked for detachAfter; bare: it is, conn is closed and fd
	// is the server's own copy.
	detachable, bare bool
	// port is the client's, kept by detach: a socket its client resets
	// while bare has no peer address left to read (see attach).
	port uint16
}

// parker holds a Server's parked connections: those armed in the
// readiness set, by file descriptor, and those with a deadline in a heap,
// earliest first. The set and its goroutine start with the first parking
// and stop with the server.
type parker struct {
	mu      sync.Mutex
	set     readySet             // nil until first needed, or if the system has none
	inited  bool                 // set has been made, if it could be
	pending map[net.Conn]*parked // Park called, handler not yet returned
	byFD    []*parked            // armed in set
	timers  parkTimers
	// Connections parked by ParkSocket, to be made bare sockets at the
	// next sweep but one (fresh) or at the next (due): each is detached
	// between detachAfter and twice that after it parked, unless it has
	// been woken before; a client that speaks soon after it connects
	// never pays for it.
	fresh, due []*parked
	swept      time.Time // the last sweep
	count      int
	seq        uint32
	wakeAt     time.Time     // when the loop wakes at the latest; zero: never
	parks      int           // parkings since the last trim
	parked     time.Time     // the last parking
	started    bool          // the loop runs (until done)
	closed     bool          // no more parking
	ended      bool          // set is closed
	done       chan struct{} // closed when the loop has ended
}

// readySet is the system's readiness set: epoll on Linux.
type readySet interface {
	// arm watches fd until it is readable once, then reports token.
	arm(fd int, token uint64) error
	// wait returns the tokens of the armed descriptors that became ready
	// (appended to tokens[:0]) within timeout (negative: no limit), or
	// early after wake.
	wait(tokens []uint64, timeout time.Duration) ([]uint64, error)
	wake()
	// forget stops watching fd, which is about to be closed while a
	// copy of it stays open (the set would watch it until the copy
	// closes).
	forget(fd int)
	close()
}

// available reports whether connections can be parked: the system has a
// readiness set and the server is not closing.
func (p *parker) available() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.inited && !p.closed {
		p.inited = true
		p.set = newReadySet()
		p.pending = make(map[net.Conn]*parked)
		p.done = make(chan struct{})
	}
	return p.set != nil && !p.closed
}

// hold notes that the handler parked pk.conn; the server arms it once the
// handler has returned (see take).
func (p *parker) hold(pk *parked) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.pending[pk.conn] = pk
	return true
}

// take returns what the handler that just returned parked conn for, if it
// did.
func (p *parker) take(conn net.Conn) *parked {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 {
		return nil
	}
	pk := p.pending[conn]
	delete(p.pending, conn)
	return pk
}

// arm parks pk: the server's loop calls wakeUp with it when it is ready.
// It reports false when pk cannot be parked after all (the server is
// closing, or the set failed); the caller then calls pk.next itself.
func (p *parker) arm(s *Server, pk *parked) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if !p.started {
		p.started = true
		go p.loop(s)
	}
	p.seq++
	pk.seq = p.seq
	if int(pk.fd) >= len(p.byFD) {
		p.byFD = append(p.byFD, make([]*parked, int(pk.fd)+1-len(p.byFD))...)
	}
	p.byFD[pk.fd] = pk
	if err := p.set.arm(int(pk.fd), token(int(pk.fd), pk.seq)); err != nil {
		p.byFD[pk.fd] = nil
		s.logger().Warn("cannot park a connection; it keeps its goroutine", "err", err)
		return false
	}
	p.count++
	p.parks++
	p.parked = time.Now()
	if pk.detachable {
		if len(p.fresh) == 0 && len(p.due) == 0 {
			p.swept = p.parked // the first sweep is detachAfter from now
			p.set.wake()
		}
		p.fresh = append(p.fresh, pk)
	}
	if pk.deadline != 0 {
		heap.Push(&p.timers, pk)
		if p.wakeAt.IsZero() || pk.deadline < p.wakeAt.UnixNano() {
			p.set.wake()
		}
	}
	return true
}

// forget takes fd, no longer parked, out of the set.
func (p *parker) forget(fd int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set != nil && !p.ended {
		p.set.forget(fd)
	}
}

func token(fd int, seq uint32) uint64 { return uint64(seq)<<32 | uint64(uint32(fd)) }

// unpark forgets pk. p.mu is held.
func (p *parker) unpark(pk *parked) {
	p.byFD[pk.fd] = nil
	if pk.index >= 0 {
		heap.Remove(&p.timers, int(pk.index))
	}
	p.count--
}

// loop waits on the set and hands every connection that is ready, or
// whose deadline passed, back to the server, until the parker closes.
func (p *parker) loop(s *Server) {
	defer close(p.done)
	tokens := make([]uint64, 0, 256)
	var ready []*parked
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.wakeAt = time.Time{}
		if len(p.timers) > 0 {
			p.wakeAt = time.Unix(0, p.timers[0].deadline)
		}
		trimAt := p.parked.Add(trimAfter)
		if p.parks >= trimParks && (p.wakeAt.IsZero() || trimAt.Before(p.wakeAt)) {
			p.wakeAt = trimAt
		}
		sweepAt := p.swept.Add(time.Duration(detachAfter.Load()))
		if (len(p.fresh) > 0 || len(p.due) > 0) && (p.wakeAt.IsZero() || sweepAt.Before(p.wakeAt)) {
			p.wakeAt = sweepAt
		}
		timeout := time.Duration(-1)
		if !p.wakeAt.IsZero() {
			timeout = max(0, time.Until(p.wakeAt))
		}
		p.mu.Unlock()
		var err error
		tokens, err = p.set.wait(tokens, timeout)
		if err != nil {
			s.logger().Error("parked connections cannot be watched", "err", err)
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.release(s)
			return
		}
		p.mu.Lock()
		for _, t := range tokens {
			fd, seq := int(uint32(t)), uint32(t>>32)
			if fd < len(p.byFD) && p.byFD[fd] != nil && p.byFD[fd].seq == seq {
				pk := p.byFD[fd]
				p.unpark(pk)
				ready = append(ready, pk)
			}
		}
		now := time.Now()
		for len(p.timers) > 0 && p.timers[0].deadline <= now.UnixNano() {
			pk := p.timers[0]
			p.unpark(pk)
			ready = append(ready, pk)
		}
		trim := p.parks >= trimParks && now.Sub(p.parked) >= trimAfter
		if trim {
			p.parks = 0
		}
		var detached []net.Conn
		if (len(p.fresh) > 0 || len(p.due) > 0) && !now.Before(p.swept.Add(time.Duration(detachAfter.Load()))) {
			detached = p.sweep(s, detached)
			p.swept = now
		}
		p.mu.Unlock()
		for i, c := range detached {
			c.Close() // its socket stays open through the server's copy
			detached[i] = nil
		}
		if trim {
			trimMemory()
		}
		for i, pk := range ready {
			go s.resume(pk)
			ready[i] = nil
		}
		ready = ready[:0]
	}
}

// detachAfter is how long a connection parked by ParkSocket keeps its
// net.Conn before it is made a bare socket (at most twice that), in
// nanoseconds: one second (tests make it shorter).
var detachAfter atomic.Int64

func init() { detachAfter.Store(int64(time.Second)) }

// sweep makes the due connections that are still parked bare sockets
// (detach), and the fresh ones due. It returns conns with the net.Conns
// to close (after p.mu). p.mu is held.
func (p *parker) sweep(s *Server, conns []net.Conn) []net.Conn {
	for i, pk := range p.due {
		p.due[i] = nil
		if int(pk.fd) < len(p.byFD) && p.byFD[pk.fd] == pk && !pk.bare {
			c, later := p.detach(s, pk)
			if c != nil {
				conns = append(conns, c)
			}
			if later {
				p.fresh = append(p.fresh, pk) // at the next sweep but one
			}
		}
	}
	p.due, p.fresh = p.fresh, p.due[:0]
	return conns
}

// resume serves pk's connection again, once it is ready or handed back.
func (s *Server) resume(pk *parked) {
	conn := pk.conn
	if pk.bare {
		t, _ := pk.ctx.Value(trackedKey{}).(*tracked)
		conn = s.attach(t, pk)
	}
	s.serveConn(pk.ctx, conn, pk.next, false)
}

// close stops parking: every parked connection is handed back to the
// server (the caller has closed them, or they will find the server
// closing), and the loop ends. It returns once the loop has.
func (p *parker) close(s *Server) {
	p.mu.Lock()
	p.closed = true
	started, set := p.started, p.set
	if p.ended || set == nil {
		p.mu.Unlock()
		if started {
			<-p.done
		}
		return
	}
	p.ended = true
	p.mu.Unlock()
	p.release(s)
	if started {
		set.wake()
		<-p.done
	}
	set.close()
}

// release hands every parked connection back to the server.
func (p *parker) release(s *Server) {
	p.mu.Lock()
	var all []*parked
	for _, pk := range p.byFD {
		if pk != nil {
			all = append(all, pk)
		}
	}
	for _, pk := range all {
		p.unpark(pk)
	}
	p.mu.Unlock()
	for _, pk := range all {
		go s.resume(pk)
	}
}

// After a burst of parking, the memory the parked handlers used (their
// goroutines' stacks, their pooled buffers, garbage of their work) is
// free but still resident: the runtime returns free memory to the system
// only as far as it exceeds the heap's next goal, twice the live heap, and
// frees dead goroutines' stacks and idle pooled buffers only at garbage
// collections, which an idle server does not run. So once trimParks
// connections have parked and trimAfter has passed without another
// parking, the server collects and returns what is free at once, as
// redis-server's allocator purges its freed pages after a delay. That is
// one collection after a burst, and none while nothing happens.
const (
	trimAfter = 5 * time.Second
	trimParks = 64
)

// trimMemory collects twice (a sync.Pool keeps what it holds for one
// collection more) and returns free memory to the system.
func trimMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// parkTimers is a heap of parked connections by deadline.
type parkTimers []*parked

func (h parkTimers) Len() int           { return len(h) }
func (h parkTimers) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h parkTimers) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = int32(i), int32(j)
}
func (h *parkTimers) Push(x any) {
	pk := x.(*parked)
	pk.index = int32(len(*h))
	*h = append(*h, pk)
}
func (h *parkTimers) Pop() any {
	old := *h
	pk := old[len(old)-1]
	old[len(old)-1] = nil
	pk.index = -1
	*h = old[:len(old)-1]
	return pk
}
