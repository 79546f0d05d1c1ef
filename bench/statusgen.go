//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The status load generator: a cell's clients shared among statusLoops OS
// threads, each with nonblocking sockets and one epoll set, as loadgen.go
// does for the shared string. A client loops: socket, connect, send the command, read to end
// of file, close. On two cores the generator's CPU is taken from the server
// under test; a goroutine per client on blocking system calls spent more
// of it on thread switches than on the requests.

// statusSlot is one client of the loop: idle until next, or in a request.
type statusSlot struct {
	fd        int // -1 when idle
	started   time.Time
	connected bool
	head      []byte // the answer's first bytes, to check it
	next      time.Time
}

// statusLoops is how many event loops (threads) share a cell's clients:
// one thread alone could not keep two cores' worth of server busy, as each
// request costs the client a connect and a close in the kernel.
const statusLoops = 2

// loadStatus runs clients loops of connect, send command, read to end of
// file, for dur; a request that takes over timeout, fails or gets an
// answer without the expected text is an error. Requests in flight at the
// end are finished (up to timeout) and counted in the latencies, not in
// the rate. The clients are shared among statusLoops event loops.
func loadStatus(ctx context.Context, addr, command string, clients int, dur, timeout time.Duration) statusResult {
	loops := min(clients, statusLoops)
	parts := make([]statusResult, loops)
	lats := make([][]time.Duration, loops)
	lates := make([]int, loops)
	var wg sync.WaitGroup
	for k := range loops {
		n := clients / loops
		if k < clients%loops {
			n++
		}
		wg.Go(func() { parts[k], lats[k], lates[k] = statusLoop(ctx, addr, command, n, dur, timeout) })
	}
	wg.Wait()
	r := statusResult{command: command, clients: clients, errKinds: map[string]int{}}
	var lat []time.Duration
	late := 0
	for k := range loops {
		lat = append(lat, lats[k]...)
		late += lates[k]
		r.errors += parts[k].errors
		for kind, n := range parts[k].errKinds {
			r.errKinds[kind] += n
		}
	}
	slices.Sort(lat)
	r.requests = len(lat)
	r.rate = float64(len(lat)-late) / dur.Seconds()
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// statusLoop is one event loop of loadStatus, with its own clients; it
// returns its errors, its latencies and how many of them ended after dur.
func statusLoop(ctx context.Context, addr, command string, clients int, dur, timeout time.Duration) (statusResult, []time.Duration, int) {
	want := map[string]string{"w": "load average", "ps": "PID"}[command]
	r := statusResult{errKinds: map[string]int{}}
	fail := func(kind string) {
		r.errors++
		r.errKinds[kind]++
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		fail("epoll_create1: " + err.Error())
		return r, nil, 0
	}
	defer unix.Close(ep)
	ap := netip.MustParseAddrPort(addr)
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	slots := make([]statusSlot, clients)
	for i := range slots {
		slots[i].fd = -1
	}
	var lat []time.Duration
	late := 0
	buf := make([]byte, 64<<10)
	events := make([]unix.EpollEvent, clients)

	finish := func(i int, failure string) {
		s := &slots[i]
		unix.Close(s.fd) // also takes it out of the epoll set
		s.fd = -1
		now := time.Now()
		s.next = now
		switch {
		case failure != "":
			fail(failure)
			if strings.HasPrefix(failure, "connect: ") {
				// As a real client would: do not spin on a refused or
				// overflowing listener.
				s.next = now.Add(10 * time.Millisecond)
			}
		default:
			lat = append(lat, now.Sub(s.started))
		}
	}
	send := func(i int) {
		s := &slots[i]
		if _, err := unix.Write(s.fd, []byte(command)); err != nil {
			finish(i, "send: "+err.Error())
			return
		}
		s.connected = true
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_MOD, s.fd, &ev); err != nil {
			finish(i, "epoll_ctl: "+err.Error())
		}
	}
	begin := func(i int, now time.Time) {
		s := &slots[i]
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fail("socket: " + err.Error())
			s.next = now.Add(10 * time.Millisecond)
			return
		}
		*s = statusSlot{fd: fd, started: now, head: s.head[:0]}
		err = unix.Connect(fd, sa)
		if err != nil && !errors.Is(err, unix.EINPROGRESS) {
			finish(i, "connect: "+err.Error())
			return
		}
		// Writable means connected (or failed: SO_ERROR tells).
		ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			finish(i, "epoll_ctl: "+err.Error())
		}
	}
	receive := func(i int) {
		s := &slots[i]
		for {
			n, err := unix.Read(s.fd, buf)
			switch {
			case errors.Is(err, unix.EAGAIN):
				return
			case errors.Is(err, unix.EINTR):
				continue
			case err != nil:
				finish(i, "recv: "+err.Error())
				return
			case n == 0:
				if !strings.Contains(string(s.head), want) {
					finish(i, fmt.Sprintf("wrong answer %q", firstBytes(s.head, 40)))
					return
				}
				finish(i, "")
				return
			}
			if len(s.head) < 4096 {
				s.head = append(s.head, buf[:min(n, 4096)]...)
			}
		}
	}

	start := time.Now()
	stop := start.Add(dur)
	for {
		now := time.Now()
		active := 0
		for i := range slots {
			s := &slots[i]
			if s.fd >= 0 && now.Sub(s.started) > timeout {
				if s.connected {
					finish(i, "recv: timed out")
				} else {
					finish(i, "connect: timed out")
				}
			}
			if s.fd < 0 && now.Before(stop) && !now.Before(s.next) && ctx.Err() == nil {
				begin(i, now)
			}
			if s.fd >= 0 {
				active++
			}
		}
		if active == 0 && (!now.Before(stop) || ctx.Err() != nil) {
			break
		}
		n, err := unix.EpollWait(ep, events, 10)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fail("epoll_wait: " + err.Error())
			break
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			s := &slots[i]
			if s.fd < 0 {
				continue
			}
			if !s.connected {
				if e, _ := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
					finish(i, "connect: "+unix.Errno(e).Error())
					continue
				}
				send(i)
				continue
			}
			before := len(lat)
			receive(i)
			if len(lat) > before && time.Now().After(stop) {
				late++ // counted in the latencies, not in the rate
			}
		}
	}
	// Close what a cancellation left open.
	for i := range slots {
		if slots[i].fd >= 0 {
			unix.Close(slots[i].fd)
		}
	}
	return r, lat, late
}
