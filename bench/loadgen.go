//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/tcplab/tcplab/sharedstring"
	"golang.org/x/sys/unix"
)

// The shared-string load generator: every client of a run on one OS thread,
// with nonblocking sockets and one epoll set, so the generator adds no
// scheduler of its own: per letter it makes one write, one read (two when a
// reply arrives in pieces) and a share of an epoll_wait, and spends well
// under 1 µs in user space. On a two-core machine its CPU is taken from the
// server under test, so the cheaper the generator, the more letters/s
// measures the server. What it still costs (9-18 µs per letter measured,
// against 11-28 µs for a goroutine per client on a blocking net.Conn) is
// the kernel's: on loopback the sender's write runs the receiver's TCP input
// and wake-up, and the read copies v.
//
// Each client sends one letter, waits for its reply, records the latency
// and sends the next, letters times. A run is bounded by its letter count
// and by a wall-clock cap; any error (a refused frame, a closed connection,
// the cap) ends the run and is returned.

// loadgenRun is one run of the epoll load generator.
type loadgenRun struct {
	addr    string        // host:port of the server
	clients int           // connections, all opened before the clock starts
	letters int           // letters per client
	framed  bool          // framed protocol (hello first) instead of classic
	limit   time.Duration // wall-clock cap of the timed phase
	cpu     int           // CPU to pin the event loop's thread to; -1: none
	svrPids []int         // processes whose CPU is the server's
}

// lgClient is one connection's state in the event loop.
type lgClient struct {
	fd     int
	sent   time.Time // when the outstanding letter was written
	letter byte      // the outstanding letter
	busy   bool      // a letter is outstanding
	done   int       // letters answered
	// Classic: the length of the last reply and the bytes read of this one.
	last, got int
	// Framed: the length of v the client has been sent, the frame header
	// being read, and the data bytes of the current frame still to come.
	have int
	hdr  [sharedstring.FrameHeaderLen]byte
	hdrN int
	rest int
	end  byte // the last data byte of the current frame read so far
}

// run connects the clients, runs the letters and returns the measurements.
func (r loadgenRun) run() (redisCell, error) {
	conns := make([]*lgClient, 0, r.clients)
	defer func() {
		for _, c := range conns {
			unix.Close(c.fd)
		}
	}()
	for range r.clients {
		fd, err := r.connect()
		if err != nil {
			return redisCell{}, fmt.Errorf("client %d: %w", len(conns), err)
		}
		conns = append(conns, &lgClient{fd: fd})
	}
	return r.loop(conns)
}

// connect dials the server with Go's dialer (clean errors, TCP_NODELAY
// set), retrying while a small backlog is full (strsvr.py listens with a
// backlog of 5 and accepts only once every client is there), sends the
// hello and reads the 'h' frame in framed mode, and returns a nonblocking
// duplicate of the socket for the event loop.
func (r loadgenRun) connect() (int, error) {
	var c net.Conn
	var err error
	for try := 0; try < 50; try++ {
		if c, err = net.DialTimeout("tcp", r.addr, 5*time.Second); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return -1, err
	}
	defer c.Close() // the duplicate keeps the connection open
	if r.framed {
		// The bench knows the server is tcplab, so it skips the UDP
		// discovery that sharedstring.Dial does in Auto mode and sends the
		// hello at once, as Dial does in Framed mode.
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return -1, err
		}
		if _, err := c.Write(sharedstring.Hello(0)); err != nil {
			return -1, fmt.Errorf("send hello: %w", err)
		}
		var h [sharedstring.FrameHeaderLen]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return -1, fmt.Errorf("read hello frame: %w", err)
		}
		if h[0] != sharedstring.KindHello || binary.BigEndian.Uint64(h[1:9]) != 0 || binary.BigEndian.Uint32(h[9:13]) != 0 {
			return -1, fmt.Errorf("%w: first frame is not an empty 'h' frame", sharedstring.ErrProtocol)
		}
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup socket: %w", dupErr)
	}
	// O_NONBLOCK belongs to the open file, which the duplicate shares with
	// Go's (nonblocking) descriptor; set it anyway, it costs nothing.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// loop is the event loop: one goroutine locked to its thread, one epoll set.
func (r loadgenRun) loop(conns []*lgClient) (redisCell, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r.cpu >= 0 {
		// Pinned for this run only: the thread goes back to the Go
		// runtime with the affinity it had.
		var old, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			return redisCell{}, fmt.Errorf("sched_getaffinity: %w", err)
		}
		set.Set(r.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return redisCell{}, fmt.Errorf("pin to CPU %d: %w", r.cpu, err)
		}
		defer unix.SchedSetaffinity(0, &old)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return redisCell{}, fmt.Errorf("epoll_create1: %w", err)
	}
	defer unix.Close(ep)
	for i, c := range conns {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			return redisCell{}, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	lat := make([]time.Duration, 0, r.clients*r.letters)
	buf := make([]byte, 256<<10)
	events := make([]unix.EpollEvent, min(len(conns), 1024))

	cpuSvr0 := 0.0
	for _, p := range r.svrPids {
		cpuSvr0 += procCPU(p)
	}
	cpuLoad0 := selfCPU()
	start := time.Now()
	deadline := start.Add(r.limit)
	for i, c := range conns {
		if err := c.send(byte('a'+i%26), start); err != nil {
			return redisCell{}, fmt.Errorf("client %d: %w", i, err)
		}
	}
	finished := 0
	for finished < len(conns) {
		now := time.Now()
		if now.After(deadline) {
			return redisCell{}, fmt.Errorf("run exceeded its %s cap with %d of %d letters answered", r.limit, len(lat), r.clients*r.letters)
		}
		n, err := unix.EpollWait(ep, events, int(min(deadline.Sub(now), time.Second)/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return redisCell{}, fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			c := conns[i]
			replied, err := c.receive(buf, r.framed)
			if err != nil {
				return redisCell{}, fmt.Errorf("client %d after %d letters: %w", i, c.done, err)
			}
			if !replied {
				continue
			}
			t := time.Now()
			lat = append(lat, t.Sub(c.sent))
			c.done++
			if c.done == r.letters {
				finished++
				continue
			}
			if err := c.send(byte('a'+(i+c.done)%26), t); err != nil {
				return redisCell{}, fmt.Errorf("client %d: %w", i, err)
			}
		}
	}
	cell := redisCell{clients: r.clients, elapsed: time.Since(start), letters: len(lat)}
	for _, p := range r.svrPids {
		cell.cpuSvr += procCPU(p)
	}
	cell.cpuSvr -= cpuSvr0
	cell.cpuLoad = selfCPU() - cpuLoad0
	slices.Sort(lat)
	if len(lat) > 0 {
		cell.p50, cell.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return cell, nil
}

// send writes one letter. A one-byte write to a socket with nothing
// unacknowledged in flight beyond earlier letters cannot fill its send
// buffer, so EAGAIN here is an error, not a wait.
func (c *lgClient) send(letter byte, now time.Time) error {
	c.letter, c.sent, c.busy = letter, now, true
	for {
		n, err := unix.Write(c.fd, []byte{letter})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if n != 1 {
			return errors.New("write: short write")
		}
		return nil
	}
}

// receive reads what the socket has (until EAGAIN or the end of the reply)
// and reports whether the outstanding letter's reply is complete.
//
// Classic: a reply is complete when it is at least one byte longer than the
// previous reply and the read that ends it ends with the letter sent (exact
// on loopback, where a reply below 64 KB arrives in one piece; the same
// rule as the tutorial-faithful classic client). Framed: one 'r' frame
// whose n is the client's v so far plus its data, at least one byte of
// data, and whose last byte is the letter sent.
func (c *lgClient) receive(buf []byte, framed bool) (bool, error) {
	for {
		m, err := unix.Read(c.fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
		if m == 0 {
			return false, errors.New("read: server closed the connection")
		}
		if !c.busy {
			return false, fmt.Errorf("%d bytes with no letter outstanding", m)
		}
		var done bool
		if framed {
			done, err = c.frames(buf[:m])
		} else {
			c.got += m
			done = c.got > c.last && buf[m-1] == c.letter
			if done {
				c.last, c.got = c.got, 0
			}
		}
		if err != nil || done {
			c.busy = false
			return done, err
		}
	}
}

// frames parses framed-mode bytes p, keeping only lengths and the last
// data byte, and reports whether they ended the reply frame. Bytes beyond
// the one expected frame are an error: one letter is outstanding.
func (c *lgClient) frames(p []byte) (bool, error) {
	for len(p) > 0 {
		if c.hdrN < len(c.hdr) {
			k := copy(c.hdr[c.hdrN:], p)
			c.hdrN += k
			p = p[k:]
			if c.hdrN < len(c.hdr) {
				return false, nil
			}
			n := binary.BigEndian.Uint64(c.hdr[1:9])
			d := int(binary.BigEndian.Uint32(c.hdr[9:13]))
			switch {
			case c.hdr[0] != sharedstring.KindReply:
				return false, fmt.Errorf("%w: frame kind 0x%02x, want 'r'", sharedstring.ErrProtocol, c.hdr[0])
			case d < 1 || n != uint64(c.have+d):
				return false, fmt.Errorf("%w: reply frame n=%d d=%d after %d bytes of v", sharedstring.ErrProtocol, n, d, c.have)
			}
			c.rest = d
		}
		k := min(c.rest, len(p))
		if k > 0 {
			c.end = p[k-1]
			c.rest -= k
			c.have += k
			p = p[k:]
		}
		if c.rest == 0 {
			c.hdrN = 0
			if len(p) > 0 {
				return false, fmt.Errorf("%w: %d bytes after the reply frame", sharedstring.ErrProtocol, len(p))
			}
			if c.end != c.letter {
				return false, errors.New("reply does not end with the letter sent")
			}
			return true, nil
		}
	}
	return false, nil
}
