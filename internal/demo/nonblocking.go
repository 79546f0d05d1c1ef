package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

// lessonNonblocking replays the tutorial's two-client strsvr session (section
// 6.1) against two servers: a faithful Go port of strsvr.py's round-robin
// loop over nonblocking sockets, and tcplab's strsvr (package sharedstring),
// a goroutine per client. Both print what the tutorial printed; the CPU each
// burned while the clients "typed" is measured.
var lessonNonblocking = Lesson{
	Name:    "nonblocking",
	Title:   "strsvr's round-robin over nonblocking sockets, and Go's way",
	Section: "6, 6.1",
	Run:     runNonblocking,
}

// session is one replay of the tutorial's strsvr session against a server.
type session struct {
	// Replies holds what each client printed after each letter it typed.
	Replies [2][]string
	// Final is the server's final value of v.
	Final string
	// Wall is how long the session lasted; CPU is the CPU time the whole
	// process used meanwhile (clients included: the same in both runs).
	Wall, CPU time.Duration
}

// nonblockingObservations is what the nonblocking lesson measured.
type nonblockingObservations struct {
	// RoundRobin is the session against the port of strsvr.py, and
	// Goroutines the one against tcplab's strsvr.
	RoundRobin, Goroutines session
	// LoopCPU is the CPU time of the round-robin loop's own thread
	// (getrusage RUSAGE_THREAD).
	LoopCPU time.Duration
	// Recvs counts the loop's recv(1) calls, and EmptyRecvs those that
	// found nothing (EAGAIN: the tutorial's "except: pass").
	Recvs, EmptyRecvs int64
}

// Summary implements Observations.
func (o *nonblockingObservations) Summary() string {
	return fmt.Sprintf("both servers ended with v = %q; CPU over the session: round-robin %s (%d recv calls), goroutines %s",
		o.Goroutines.Final, ms(o.RoundRobin.CPU), o.Recvs, ms(o.Goroutines.CPU))
}

// keystroke is one letter typed at one of the two clients.
type keystroke struct {
	client int // 0 or 1
	letter byte
}

// tutorialSession is the session of section 6.1: "In the first window, I
// typed 'a', then 'b', then 'c'. Then I moved to the other window, and typed
// 'u', 'u', 'v' and 'v'. I then went back to the first window and typed
// 'd', etc."
var tutorialSession = []keystroke{
	{0, 'a'}, {0, 'b'}, {0, 'c'},
	{1, 'u'}, {1, 'u'}, {1, 'v'}, {1, 'v'},
	{0, 'd'},
	{1, 'w'}, {1, 'w'},
	{0, 'e'},
}

// tutorialReplies and tutorialFinal are what the tutorial's terminals
// showed for that session.
var (
	tutorialReplies = [2][]string{
		{"a", "ab", "abc", "abcuuvvd", "abcuuvvdwwe"},
		{"abcu", "abcuu", "abcuuv", "abcuuvv", "abcuuvvdw", "abcuuvvdww"},
	}
	tutorialFinal = "abcuuvvdwwe"
)

// typingPause is the time between keystrokes: a fast typist. The servers'
// CPU use is measured across these pauses.
const typingPause = 40 * time.Millisecond

func runNonblocking(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &nonblockingObservations{}

	p.tutorial("strsvr.py accepts two clients, makes their sockets nonblocking and tries each in turn with")
	p.tutorial("recv(1), round and round, until both have left (section 6.1).")
	p.do("replay the tutorial's session (client 1 types a b c, client 2 u u v v, 1: d, 2: w w, 1: e,")
	p.do("%s apart) against a Go port of that loop (x/sys/unix, nonblocking recv), then against", ms(typingPause))
	p.do("tcplab's strsvr (package sharedstring: a goroutine per client).")
	if err := roundRobinSession(ctx, obs); err != nil {
		return nil, fmt.Errorf("round-robin server: %w", err)
	}
	if err := goroutineSession(ctx, obs); err != nil {
		return nil, fmt.Errorf("tcplab strsvr: %w", err)
	}
	for i := range obs.Goroutines.Replies {
		rr, gr := obs.RoundRobin.Replies[i], obs.Goroutines.Replies[i]
		if slices.Equal(rr, gr) {
			p.saw("client %d printed %s (both servers)", i+1, strings.Join(gr, " "))
			continue
		}
		p.saw("client %d printed %s (round-robin), %s (goroutines)", i+1, strings.Join(rr, " "), strings.Join(gr, " "))
	}
	p.saw("the final value of v is %s (round-robin: %s); as in the tutorial: %v.", obs.Goroutines.Final,
		obs.RoundRobin.Final, obs.Goroutines.Final == tutorialFinal && obs.RoundRobin.Final == tutorialFinal)
	p.saw("round-robin: %d recv() calls, %d of them found nothing; its thread used %s of CPU in %s;",
		obs.Recvs, obs.EmptyRecvs, ms(obs.LoopCPU), ms(obs.RoundRobin.Wall))
	p.saw("the process used %s.", ms(obs.RoundRobin.CPU))
	p.saw("goroutines: the process used %s of CPU in %s.", ms(obs.Goroutines.CPU), ms(obs.Goroutines.Wall))
	p.note("a goroutine per client, blocked in Read, costs no CPU while it waits: the runtime's poller")
	p.note("(epoll) wakes it. No fixed number of clients, no round-robin; the store orders the appends.")
	return obs, p.err()
}

// roundRobinSession serves the session with roundRobin.
func roundRobinSession(ctx context.Context, obs *nonblockingObservations) error {
	ln, err := listenLoopback(ctx)
	if err != nil {
		return err
	}
	defer ln.Close()
	type result struct {
		rr  rrResult
		err error
	}
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	done := make(chan result, 1)
	go func() {
		rr, err := roundRobin(loopCtx, ln, 2)
		done <- result{rr, err}
	}()
	s, err := replay(ctx, ln.Addr().String())
	if err != nil {
		stopLoop()
		ln.Close()
		<-done
		return err
	}
	r := <-done
	if r.err != nil {
		return r.err
	}
	s.Final = string(r.rr.v)
	obs.RoundRobin = s
	obs.LoopCPU, obs.Recvs, obs.EmptyRecvs = r.rr.cpu, r.rr.recvs, r.rr.empty
	return nil
}

// goroutineSession serves the session with tcplab's strsvr.
func goroutineSession(ctx context.Context, obs *nonblockingObservations) error {
	ln, err := listenLoopback(ctx)
	if err != nil {
		return err
	}
	st := store.NewMemory()
	defer st.Close()
	srv := &sharedstring.Server{Store: st, WaitFor: 2}
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type result struct {
		v   []byte
		err error
	}
	ran := make(chan result, 1)
	go func() {
		v, err := srv.Run(runCtx, &server.Server{}, ln, nil)
		ran <- result{v, err}
	}()
	s, err := replay(ctx, ln.Addr().String())
	if err != nil {
		cancel()
		<-ran
		return err
	}
	r := <-ran
	if r.err == nil && ctx.Err() == nil {
		r.err = runCtx.Err() // Run stopped at the time limit, not by itself
	}
	if r.err != nil {
		return fmt.Errorf("waiting for the clients to leave: %w", r.err)
	}
	s.Final = string(r.v)
	obs.Goroutines = s
	return nil
}

// replay connects two clients to addr and types tutorialSession as
// strclnt.py does (send the letter, then one recv(1024) for v), then has
// both leave, and times the whole.
func replay(ctx context.Context, addr string) (session, error) {
	var s session
	var d net.Dialer
	var clients [2]net.Conn
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return s, fmt.Errorf("client %d: %w", i+1, err)
		}
		clients[i] = c
	}
	cpu0 := processCPU()
	start := time.Now()
	buf := make([]byte, 1024)
	for _, k := range tutorialSession {
		select {
		case <-time.After(typingPause):
		case <-ctx.Done():
			return s, ctx.Err()
		}
		c := clients[k.client]
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{k.letter}); err != nil {
			return s, fmt.Errorf("client %d sends %q: %w", k.client+1, k.letter, err)
		}
		n, err := c.Read(buf)
		if err != nil {
			return s, fmt.Errorf("client %d reads v: %w", k.client+1, err)
		}
		s.Replies[k.client] = append(s.Replies[k.client], string(buf[:n]))
	}
	// Hitting Enter: strclnt.py sends '' (nothing) and closes.
	for i, c := range clients {
		c.Close()
		clients[i] = nil
	}
	s.Wall = time.Since(start)
	s.CPU = processCPU() - cpu0
	return s, nil
}

// rrResult is what the round-robin loop reports.
type rrResult struct {
	v            []byte
	recvs, empty int64
	cpu          time.Duration
}

// roundRobin is strsvr.py ported line for line to Go on raw nonblocking
// sockets, to be measured, not used: it accepts nc clients, sets their
// sockets nonblocking, then tries them in turn with recv(1), appending each
// letter to v and sending v back, until every client has left. Like the
// original it spins while nobody types. It runs on a locked OS thread, so
// that thread's CPU time is the loop's.
//
// Unlike the original it gives up after lessonTimeout or when ctx ends, and
// drops a client whose recv fails (the original would retry it for ever).
func roundRobin(ctx context.Context, ln *net.TCPListener, nc int) (rrResult, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r rrResult
	var cs []int // cs = []
	defer func() {
		for _, fd := range cs {
			unix.Close(fd)
		}
	}()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	for range nc { // for i in range(nc):
		c, err := ln.AcceptTCP() // (clnt,ap) = lstn.accept()
		if err != nil {
			return r, fmt.Errorf("accept: %w", err)
		}
		fd, err := dupFD(c)
		c.Close()
		if err != nil {
			return r, err
		}
		if err := unix.SetNonblock(fd, true); err != nil { // clnt.setblocking(0)
			unix.Close(fd)
			return r, fmt.Errorf("setblocking: %w", err)
		}
		cs = append(cs, fd) // cs.append(clnt)
	}
	cpu0 := threadCPU()
	deadline := time.Now().Add(lessonTimeout)
	k := make([]byte, 1)
	for len(cs) > 0 { // while (len(cs) > 0):
		if r.recvs%4096 == 0 && (ctx.Err() != nil || time.Now().After(deadline)) {
			return r, errors.Join(errors.New("clients still there"), ctx.Err())
		}
		clnt := cs[0]                // clnt = cs.pop(0)
		cs = append(cs[1:], clnt)    // cs.append(clnt)
		n, err := unix.Read(clnt, k) // k = clnt.recv(1)
		r.recvs++
		if err == unix.EAGAIN { // except: pass
			r.empty++
			continue
		}
		if err != nil || n == 0 { // if k == '': clnt.close(); cs.remove(clnt)
			unix.Close(clnt)
			cs = cs[:len(cs)-1]
			continue
		}
		r.v = append(r.v, k[0]) // v += k
		unix.Write(clnt, r.v)   // clnt.send(v), its count ignored as in the original
	}
	r.cpu = threadCPU() - cpu0
	return r, nil
}

// dupFD returns a descriptor of its own for c's socket, outside Go's
// poller, as the raw loop needs.
func dupFD(c *net.TCPConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// threadCPU is the calling thread's CPU time, user and system.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the process's CPU time so far, user and system.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
