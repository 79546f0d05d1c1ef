package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/server"
)

// lessonPoll shows how Go waits on many sockets at once: a goroutine per
// connection, parked on the runtime's epoll-based poller, thousands of them
// cheaply; then the same server with its idle connections parked in one
// epoll set and no goroutine at all (internal/server's Park), cheaper
// still; then parked as bare sockets, no net.Conn either (ParkSocket),
// cheapest; and beside them an explicit epoll loop through
// golang.org/x/sys/unix, the select()/poll() of section 6.2 written out.
var lessonPoll = Lesson{
	Name:    "poll",
	Title:   "thousands of idle connections, and an explicit epoll loop",
	Section: "6.1, 6.2",
	Run:     runPoll,
}

// pollObservations is what the poll lesson measured.
type pollObservations struct {
	// Conns is how many idle connections were opened, and Held how many
	// the server was serving at once (internal/server's ActiveConns).
	Conns, Held int
	// Goroutines is how many more goroutines ran while they were held.
	Goroutines int
	// GoBytesPerConn is the growth of the live Go heap objects, and of
	// the goroutine stacks where the connections hold goroutines, per
	// connection: the server's end alone (the clients are raw sockets,
	// holding none of the process's Go memory).
	GoBytesPerConn int64
	// RSSBytesPerConn is the growth of the process's resident memory per
	// connection, from /proc/self/status (0 if unreadable).
	RSSBytesPerConn int64
	// EchoRTT is the round trip on one of them while the others idled.
	EchoRTT time.Duration

	// Parked is how many of the same number of idle connections the same
	// server held parked (server.Park) when its handler parks instead of
	// blocking in Read; ParkedGoroutines, ParkedGoBytesPerConn,
	// ParkedRSSBytesPerConn and ParkedEchoRTT are the figures above for
	// that run.
	Parked, ParkedGoroutines                    int
	ParkedGoBytesPerConn, ParkedRSSBytesPerConn int64
	ParkedEchoRTT                               time.Duration

	// Bare is how many of the same number of idle connections the same
	// server held as bare sockets (server.ParkSocket, Server.ParkedBare)
	// when its handler parks them that way; BareGoroutines,
	// BareGoBytesPerConn, BareRSSBytesPerConn and BareEchoRTT (the round
	// trip after waking one) are the figures above for that run.
	Bare, BareGoroutines                    int
	BareGoBytesPerConn, BareRSSBytesPerConn int64
	BareEchoRTT                             time.Duration

	// EpollOrder is the order in which the explicit epoll loop served the
	// three clients' messages (the order they were sent, not accepted).
	EpollOrder []string
	// EpollReplies are the replies the clients read, in the same order.
	EpollReplies []string
	// EpollWaits is how many epoll_wait calls the loop made.
	EpollWaits int
}

// Summary implements Observations.
func (o *pollObservations) Summary() string {
	if o.Conns == 0 {
		return fmt.Sprintf("no idle connections (ulimit -n too low); epoll loop served %s in %d waits",
			strings.Join(o.EpollOrder, ", "), o.EpollWaits)
	}
	return fmt.Sprintf("held %d idle connections on %d goroutines, %s Go memory per connection (server's end); parked, on %d goroutines, %s; bare sockets, on %d goroutines, %s; epoll loop served %s in %d waits",
		o.Held, o.Goroutines, byteCount(o.GoBytesPerConn), o.ParkedGoroutines, byteCount(o.ParkedGoBytesPerConn),
		o.BareGoroutines, byteCount(o.BareGoBytesPerConn), strings.Join(o.EpollOrder, ", "), o.EpollWaits)
}

// pollConns is how many idle connections the lesson holds: enough to show
// the cost is per connection and small, few enough to open in a blink.
const pollConns = 2000

func runPoll(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &pollObservations{}

	p.tutorial("a server with many clients needs a thread per client, or nonblocking sockets and select()/poll() (6.1, 6.2).")
	blocked, err := pollIdle(ctx, idleBlocked)
	if err != nil {
		return nil, err
	}
	obs.Conns, obs.Held, obs.Goroutines = blocked.conns, blocked.held, blocked.goroutines
	obs.GoBytesPerConn, obs.RSSBytesPerConn, obs.EchoRTT = blocked.goBytes, blocked.rss, blocked.rtt
	if obs.Conns == 0 {
		p.line("Skipped:  ", "idle connections: the descriptor limit (ulimit -n) leaves room for none; %d would hold all %d.", pollFDsPerConn*pollConns+pollSpareFDs, pollConns)
	} else {
		obs.narrateIdle(p, blocked)
		parked, err := pollIdle(ctx, idleParked)
		if err != nil {
			return nil, err
		}
		obs.Parked, obs.ParkedGoroutines = parked.parked, parked.goroutines
		obs.ParkedGoBytesPerConn, obs.ParkedRSSBytesPerConn, obs.ParkedEchoRTT = parked.goBytes, parked.rss, parked.rtt
		obs.narrateParked(p, blocked, parked)
		bare, err := pollIdle(ctx, idleParkedBare)
		if err != nil {
			return nil, err
		}
		obs.Bare, obs.BareGoroutines = bare.bare, bare.goroutines
		obs.BareGoBytesPerConn, obs.BareRSSBytesPerConn, obs.BareEchoRTT = bare.goBytes, bare.rss, bare.rtt
		obs.narrateBare(p, blocked, parked, bare)
	}
	p.tutorial("select()/poll() ask the OS which sockets are ready, instead of trying each in turn (6.2).")
	if err := pollEpoll(ctx, obs); err != nil {
		return nil, err
	}
	p.do("an epoll loop (x/sys/unix) serves three clients; they send in the order c3, c1, c2.")
	p.saw("the loop served %s, in %d epoll_wait calls; replies: %q.",
		strings.Join(obs.EpollOrder, ", "), obs.EpollWaits, obs.EpollReplies)
	return obs, p.err()
}

// narrateIdle tells what the idle connections cost, a goroutine each.
func (obs *pollObservations) narrateIdle(p *page, blocked idleRun) {
	p.do("open %d connections to one server (internal/server, a goroutine each) and leave them idle.", obs.Conns)
	p.saw("the server held %d at once, on %d more goroutines.", obs.Held, obs.Goroutines)
	p.saw("memory per connection, the server's end: %s", memLine(blocked))
	p.saw("(the clients are raw sockets, outside Go: they add nothing to either figure; the kernel's")
	p.saw("socket structures, which an idle socket keeps small, are not resident memory either; the")
	p.saw("heap objects include, the first time, each goroutine's descriptor, kept for reuse after it).")
	p.saw("one of them, written to while the rest idled, echoed in %s.", ms(obs.EchoRTT))
	p.note("a blocked Read parks its goroutine (a few KiB of stack) and registers the socket with the")
	p.note("runtime's epoll poller: blocking code per client, nonblocking sockets underneath, no round-robin.")
}

// percentOf says what part of the goroutine-per-connection figure a run's is.
func percentOf(r, blocked idleRun) string {
	if blocked.goBytes <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(r.goBytes)/float64(blocked.goBytes))
}

// narrateParked tells what the same connections cost parked.
func (obs *pollObservations) narrateParked(p *page, blocked, parked idleRun) {
	p.do("the same, with a handler that parks its connection when there is nothing to read (server.Park).")
	p.saw("the server held %d parked, on %d more goroutines.", obs.Parked, obs.ParkedGoroutines)
	p.saw("memory per connection, the server's end: %s", memLine(parked))
	p.saw("%s of the goroutine-per-connection figure; the echo took %s.", percentOf(parked, blocked), ms(obs.ParkedEchoRTT))
	p.note("a parked connection is a socket in one epoll set the server waits on: no goroutine, no stack,")
	p.note("no buffer until it is readable. Then a goroutine serves it and parks it again: the poll()")
	p.note("loop of 6.2 underneath, the blocking code of 6.1 on top.")
}

// narrateBare tells what the same connections cost parked as bare sockets.
func (obs *pollObservations) narrateBare(p *page, blocked, parked, bare idleRun) {
	p.do("the same, parked with server.ParkSocket; the server detaches a connection still parked at its")
	p.do("sweep after next, 1 to 2 s after it parked: we wait until it reports all %d bare (ParkedBare).", obs.Conns)
	p.saw("the server held %d as bare sockets, on %d more goroutines.", obs.Bare, obs.BareGoroutines)
	p.saw("memory per connection, the server's end: %s", memLine(bare))
	p.saw("%s of the goroutine-per-connection figure (parked: %s); the echo, waking one, took %s.",
		percentOf(bare, blocked), percentOf(parked, blocked), ms(obs.BareEchoRTT))
	p.note("parked, a connection is still a net.Conn: net's netFD and addresses (about 300 bytes, in the")
	p.note("heap) and the runtime's poll descriptor and finalizer record (about 570 more, outside it). Bare,")
	p.note("it is only its descriptor in the server's epoll set: the net.Conn is closed and the poll")
	p.note("descriptor goes back to the runtime's cache, for the next connection that talks. That cache")
	p.note("was filled by the first step, so both this figure and the parked one leave the poll descriptors")
	p.note("out: the difference measured is the heap's part. When the client speaks, net.FileConn makes a")
	p.note("new net.Conn of the socket, and the handler goes on with that one.")
}

// pollSpareFDs is how many descriptors the poll lesson leaves to the rest
// of the process (standard streams, the runtime's poller, the listener,
// the epoll loop's eight) when it sizes its idle connections.
const pollSpareFDs = 32

// pollFDsPerConn is how many descriptors an idle connection of the
// lesson needs at most: the client's end, the server's, and, for a moment
// when ParkSocket's sweep makes it a bare socket, the server's copy (the
// sweep copies all it detaches before it closes their net.Conns; one it
// cannot copy stays parked with its net.Conn, and the lesson would wait
// for it in vain).
const pollFDsPerConn = 3

// pollConnLimit is how many connections fit in the descriptor limit,
// pollFDsPerConn descriptors each, with room to spare.
func pollConnLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 100
	}
	return pollConnsFor(rl.Cur)
}

// pollConnsFor is pollConnLimit for the descriptor limit cur: from 0
// (a limit too low for any) to pollConns.
func pollConnsFor(cur uint64) int {
	if cur < pollSpareFDs {
		return 0
	}
	return int(min(uint64(pollConns), (cur-pollSpareFDs)/pollFDsPerConn))
}

// idleRun is what one run of pollIdle measured.
type idleRun struct {
	conns, held, parked, bare, goroutines int
	goBytes, heap, stacks, rss            int64 // per connection, the server's end
	rtt                                   time.Duration
}

// memLine says what a run measured per connection.
func memLine(r idleRun) string {
	var line string
	if r.goroutines >= r.conns/2 {
		line = fmt.Sprintf("%s of Go memory (heap objects %s, goroutine stacks %s)", byteCount(r.goBytes), byteCount(r.heap), byteCount(r.stacks))
	} else {
		line = fmt.Sprintf("%s of Go memory (heap objects; no goroutine stacks)", byteCount(r.goBytes))
	}
	if r.rss > 0 {
		line += fmt.Sprintf(", %s resident", byteCount(r.rss))
	}
	return line
}

// How the poll lesson's server waits for an idle client.
type idleMode int

const (
	idleBlocked    idleMode = iota // a goroutine blocked in Read
	idleParked                     // server.Park: no goroutine, still a net.Conn
	idleParkedBare                 // server.ParkSocket: a bare socket
)

// pollIdle opens idle connections to an echo server on internal/server
// whose handler blocks in Read, or parks the connection whenever it has
// nothing to read (server.Park, or server.ParkSocket); it measures what
// they cost the server and echoes on one of them. The clients are raw
// sockets (system calls, outside Go's net and poller), so that the Go
// memory and resident set the connections add are the server's end alone.
func pollIdle(ctx context.Context, mode idleMode) (idleRun, error) {
	var r idleRun
	ln, err := listenLoopback(ctx)
	if err != nil {
		return r, err
	}
	var echo server.HandlerFunc
	echo = func(ctx context.Context, conn net.Conn) {
		var buf [64]byte
		for {
			deadline := time.Now().Add(lessonTimeout)
			// Parked, the server calls echo again when conn is readable:
			// with ParkSocket, with a new net.Conn for the same socket.
			if mode == idleParked && server.Park(ctx, conn, deadline, echo) ||
				mode == idleParkedBare && server.ParkSocket(ctx, conn, deadline, echo) {
				return
			}
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf[:])
			if err != nil {
				return
			}
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	srv := &server.Server{Handler: echo}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-served
	}()

	n := pollConnLimit()
	if n == 0 {
		return r, nil
	}
	port := ln.Addr().(*net.TCPAddr).Port
	conns := make([]int, 0, n)
	defer func() {
		for _, fd := range conns {
			unix.Close(fd)
		}
	}()
	heapBefore, stacksBefore, rssBefore := memNow()
	grBefore := runtime.NumGoroutine()
	for range n {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		fd, err := rawDial(port)
		if err != nil {
			return r, fmt.Errorf("connection %d: %w", len(conns)+1, err)
		}
		conns = append(conns, fd)
	}
	r.conns = n
	// Wait for the server to have accepted them all, and parked them, and
	// (ParkSocket) detached them: it does that to a connection still
	// parked at its sweep after next, one or two seconds after it parked.
	ready := func() bool {
		switch {
		case srv.ActiveConns() < n:
			return false
		case mode == idleParked:
			return srv.Parked() == n
		case mode == idleParkedBare:
			return srv.ParkedBare() == n
		}
		return true
	}
	wait := 5 * time.Second
	if mode == idleParkedBare {
		wait += 2 * time.Second
	}
	deadline := time.Now().Add(wait)
	for !ready() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond) // polling the server's state
	}
	r.held, r.parked, r.bare = srv.ActiveConns(), srv.Parked(), srv.ParkedBare()
	r.goroutines = runtime.NumGoroutine() - grBefore

	// Echo on one of them, then measure, then time an echo on another.
	// The order matters with ParkSocket: the server counts a connection
	// bare once its socket is detached, and its parking loop closes the
	// net.Conns of a sweep just after (2,000 closes: milliseconds),
	// before it next waits for readiness; the first echo's bytes are seen
	// in that wait, so once it is back every detached net.Conn is closed,
	// and the timed echo does not wait behind them. (The one echoed on is
	// then parked again with a new net.Conn, until the sweep after next:
	// one in n, within the rounding.)
	if _, err := rawEcho(conns[0], "sync"); err != nil {
		return r, fmt.Errorf("echo on an idle connection: %w", err)
	}
	heapAfter, stacksAfter, rssAfter := memNow()
	r.heap, r.stacks = (heapAfter-heapBefore)/int64(n), (stacksAfter-stacksBefore)/int64(n)
	r.goBytes = r.heap
	if r.goroutines >= n/2 {
		// A goroutine each: their stacks are theirs. Without (parked),
		// the stack spans in use still move by a few of the runtime's
		// 32 KiB spans either way (it frees a span only once all its
		// stacks are free), hundreds of bytes per connection up or down
		// that no connection holds: not counted.
		r.goBytes += r.stacks
	}
	if rssBefore > 0 && rssAfter > rssBefore {
		r.rss = (rssAfter - rssBefore) / int64(n)
	}
	if r.rtt, err = rawEcho(conns[n/2], "ping"); err != nil {
		return r, fmt.Errorf("echo on an idle connection: %w", err)
	}
	return r, nil
}

// rawDial connects a blocking socket to 127.0.0.1:port with the system
// calls alone: a client that holds none of this process's Go memory.
func rawDial(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt: %w", err)
		}
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port})
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect: %w", err)
	}
	return fd, nil
}

// rawEcho writes msg on the raw socket fd and reads back as many bytes,
// returning the round trip. It goes through a net.Conn made of a copy of
// fd (once the memory has been measured; fd itself stays the caller's): a read blocked in a system call
// would hold one of the runtime's Ps (two on a 2-core machine), and the
// server's goroutine that echoes could wait for the runtime to take it
// back, milliseconds, where the runtime's poller wakes it at once.
func rawEcho(fd int, msg string) (time.Duration, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("dup: %w", err)
	}
	f := os.NewFile(uintptr(dup), "client") // f owns dup; fd stays the caller's
	c, err := net.FileConn(f)               // another copy
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("client conn: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(c, msg); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	reply := make([]byte, len(msg))
	if _, err := io.ReadFull(c, reply); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	rtt := time.Since(start)
	if string(reply) != msg {
		return 0, fmt.Errorf("echoed %q, sent %q", reply, msg)
	}
	return rtt, nil
}

// memNow returns the bytes of live Go heap objects and of goroutine
// stacks and the resident set size (0 if /proc is unreadable), after a
// collection so garbage does not count and with free memory returned to
// the system, so that the resident set is what is in use. It counts heap
// objects, not the heap's spans (MemStats.HeapInuse): new objects fill
// the free slots earlier work left in spans, so spans in use grow by less
// than what was allocated, by a different amount each time. It collects
// twice: a sync.Pool keeps what it holds for one collection more.
func memNow() (heap, stacks, rss int64) {
	runtime.GC()
	debug.FreeOSMemory()
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		heap = int64(s[0].Value.Uint64())
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		stacks = int64(s[1].Value.Uint64())
	}
	return heap, stacks, rssBytes()
}

// rssBytes reads VmRSS from /proc/self/status.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// epollClients is how many clients the explicit loop serves, and
// epollSendOrder the order they send in: not the order they connected, so
// the loop is seen serving whoever is ready.
var epollSendOrder = []int{3, 1, 2}

// pollEpoll runs an explicit epoll loop on raw sockets and three clients
// that each send one message, one after another, in epollSendOrder.
func pollEpoll(ctx context.Context, obs *pollObservations) error {
	lfd, port, err := rawListen()
	if err != nil {
		return err
	}
	defer unix.Close(lfd)

	loopCtx, stopLoop := context.WithCancel(ctx)
	type loopResult struct {
		order []string
		waits int
		err   error
	}
	done := make(chan loopResult, 1)
	go func() {
		order, waits, err := epollLoop(loopCtx, lfd, len(epollSendOrder))
		done <- loopResult{order, waits, err}
	}()
	finish := func() loopResult {
		stopLoop()
		return <-done
	}

	conns := make([]net.Conn, len(epollSendOrder))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var d net.Dialer
	for i := range conns {
		c, err := d.DialContext(ctx, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			finish()
			return fmt.Errorf("dial the epoll server: %w", err)
		}
		conns[i] = c
	}
	for _, k := range epollSendOrder {
		c := conns[k-1]
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "c%d", k); err != nil {
			finish()
			return fmt.Errorf("client c%d: %w", k, err)
		}
		reply := make([]byte, 64)
		n, err := c.Read(reply)
		if err != nil {
			finish()
			return fmt.Errorf("client c%d reply: %w", k, err)
		}
		obs.EpollReplies = append(obs.EpollReplies, string(reply[:n]))
	}
	r := finish()
	if r.err != nil {
		return fmt.Errorf("epoll loop: %w", r.err)
	}
	obs.EpollOrder, obs.EpollWaits = r.order, r.waits
	return nil
}

// rawListen opens a nonblocking listening socket on 127.0.0.1 with the raw
// system calls, outside Go's poller.
func rawListen() (fd, port int, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("getsockname: %w", err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// epollLoop is select()/poll() written out: one thread asks the kernel
// which sockets are ready and serves only those. It accepts on lfd, and for
// each message a client sends it replies "got MESSAGE". It returns after
// serving want messages, or when ctx ends, with the messages in the order
// served and the number of epoll_wait calls.
func epollLoop(ctx context.Context, lfd, want int) (order []string, waits int, err error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, 0, fmt.Errorf("epoll_create1: %w", err)
	}
	defer unix.Close(epfd)
	var conns []int
	defer func() {
		for _, fd := range conns {
			unix.Close(fd)
		}
	}()
	watch := func(fd int) error {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		return unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	if err := watch(lfd); err != nil {
		return nil, 0, fmt.Errorf("epoll_ctl: %w", err)
	}
	events := make([]unix.EpollEvent, 16)
	buf := make([]byte, 64)
	for len(order) < want {
		if ctx.Err() != nil {
			return order, waits, ctx.Err()
		}
		// A short timeout lets the loop notice ctx; a server that only
		// serves sockets would wait with -1 (for ever).
		n, err := unix.EpollWait(epfd, events, 100)
		waits++
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return order, waits, fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				cfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if err != nil {
					continue // EAGAIN: another wakeup took it
				}
				conns = append(conns, cfd)
				if err := watch(cfd); err != nil {
					return order, waits, fmt.Errorf("epoll_ctl: %w", err)
				}
				continue
			}
			m, err := unix.Read(fd, buf)
			if m <= 0 || err != nil {
				// End of file or an error: stop watching it.
				unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, fd, nil)
				continue
			}
			msg := string(buf[:m])
			order = append(order, msg)
			unix.Write(fd, []byte("got "+msg))
		}
	}
	return order, waits, nil
}
