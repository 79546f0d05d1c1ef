package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/netlab"
)

// sockopts reads the keep-alive and user-timeout options of c.
func sockopts(t *testing.T, c net.Conn) (keepalive, idle, intvl, cnt, userMS int) {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	get := func(fd uintptr, level, opt int) int {
		v, err := unix.GetsockoptInt(int(fd), level, opt)
		errs = append(errs, err)
		return v
	}
	raw.Control(func(fd uintptr) {
		keepalive = get(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle = get(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		intvl = get(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		cnt = get(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
		userMS = get(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return
}

// Every served connection gets the defaults, checked as values: probes
// after 15 s of silence, every 5 s, and TCP_USER_TIMEOUT 45 s, which frees
// a vanished peer's slot within a minute, idle or with a reply in flight.
func TestServedConnsDetectVanishedPeersByDefault(t *testing.T) {
	type opts struct{ ka, idle, intvl, cnt, user int }
	got := make(chan opts, 1)
	s := &Server{Handler: HandlerFunc(func(_ context.Context, c net.Conn) {
		var o opts
		o.ka, o.idle, o.intvl, o.cnt, o.user = sockopts(t, c)
		got <- o
	})}
	addr := startFull(t, s, 0)
	c := dialFrom(t, "127.0.0.1", addr)
	defer c.Close()
	want := opts{1, 15, 5, 6, 45000}
	if o := <-got; o != want {
		t.Fatalf("served connection: keepalive %d idle %d s interval %d s count %d user timeout %d ms; want %+v", o.ka, o.idle, o.intvl, o.cnt, o.user, want)
	}
	if DefaultKeepAlive.Idle+time.Duration(DefaultKeepAlive.Count)*DefaultKeepAlive.Interval > time.Minute || DefaultUserTimeout > time.Minute {
		t.Fatal("defaults free a vanished peer's slot later than a minute")
	}
}

// Zero values and opting out.
func TestDetectVanishedPeerConfig(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	for _, tc := range []struct {
		name string
		ka   net.KeepAliveConfig
		user time.Duration
		want [5]int
	}{
		{"defaults", net.KeepAliveConfig{}, 0, [5]int{1, 15, 5, 6, 45000}},
		{"given", net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: 2 * time.Second, Count: 3}, 4 * time.Second, [5]int{1, 1, 2, 3, 4000}},
		{"off", net.KeepAliveConfig{Idle: -1}, -1, [5]int{0, -1, -1, -1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := DetectVanishedPeer(c, tc.ka, tc.user); err != nil {
				t.Fatal(err)
			}
			var got [5]int
			got[0], got[1], got[2], got[3], got[4] = sockopts(t, c)
			if tc.want[1] < 0 { // off: only SO_KEEPALIVE and the user timeout matter
				got[1], got[2], got[3] = -1, -1, -1
			}
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if err := DetectVanishedPeer(pipeConn{}, net.KeepAliveConfig{}, 0); err != nil {
		t.Fatalf("a connection that is not TCP: %v", err)
	}
}

type pipeConn struct{ net.Conn }

// fastDetect is the lab's shortened configuration: the same mechanism, in
// seconds instead of tens of seconds.
var fastDetect = struct {
	ka   net.KeepAliveConfig
	user time.Duration
}{net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: 500 * time.Millisecond, Count: 3}, 2 * time.Second}

// labServer serves s in the lab's namespace B and returns the address a
// client in A dials.
func labServer(t *testing.T, l *netlab.Link, s *Server) string {
	t.Helper()
	countConns(s)
	ln, err := l.B.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-served
	})
	return ln.Addr().String()
}

func labDial(t *testing.T, l *netlab.Link, addr string) *net.TCPConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.A.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFreed waits up to limit for s to serve no connection, and returns
// how long it took.
func waitFreed(t *testing.T, s *Server, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if !openConns(t, s).Wait(limit, func(n int) bool { return n == 0 }) {
		t.Fatalf("slot still held %s after the peer vanished", limit)
	}
	return time.Since(start)
}

// A peer that vanishes (every packet dropped: no FIN, no RST) releases its
// slot: while idle, through the keep-alive probes; with a reply in flight,
// through TCP_USER_TIMEOUT. Both within the user timeout plus a probe
// interval and a margin. Without them (the control) the idle slot is still
// held long after, as the handler has no read deadline: that was strsvr's
// 148 s (and 30 minutes with its read timeout) before.
func TestVanishedPeerReleasesItsSlot(t *testing.T) {
	// The margin is for the machine, not the kernel: on 2 loaded cores
	// (load average 30) the reply in flight was freed after more than
	// 4 s in 3 runs of 5, the kernel's error reaching a starved process
	// late. Without detection the slot is held for ever (the control),
	// so a wider margin still tells the two apart.
	limit := fastDetect.user + 6*time.Second
	t.Run("idle", func(t *testing.T) {
		l := netlab.ForTest(t)
		s := &Server{KeepAlive: fastDetect.ka, UserTimeout: fastDetect.user,
			Handler: HandlerFunc(func(_ context.Context, c net.Conn) { io.Copy(io.Discard, c) })}
		addr := labServer(t, l, s)
		labDial(t, l, addr)
		waitActive(t, s, 1)
		if err := l.A.Vanish(); err != nil {
			t.Fatal(err)
		}
		t.Logf("idle: slot freed %s after the peer vanished", waitFreed(t, s, limit))
	})
	t.Run("parked", func(t *testing.T) {
		// A parked connection holds no goroutine to see the failure: the
		// kernel's error wakes it like bytes would.
		l := netlab.ForTest(t)
		ended := make(chan error, 1)
		s := &Server{KeepAlive: fastDetect.ka, UserTimeout: fastDetect.user, Handler: parkingEcho(0, ended)}
		addr := labServer(t, l, s)
		labDial(t, l, addr)
		waitParked(t, s, 1)
		if err := l.A.Vanish(); err != nil {
			t.Fatal(err)
		}
		t.Logf("parked: slot freed %s after the peer vanished", waitFreed(t, s, limit))
		if err := <-ended; !errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("a parked connection to a vanished peer ended with %v, want connection timed out", err)
		}
	})
	t.Run("reply in flight", func(t *testing.T) {
		l := netlab.ForTest(t)
		vanished := make(chan struct{})
		werr := make(chan error, 1)
		s := &Server{KeepAlive: fastDetect.ka, UserTimeout: fastDetect.user,
			Handler: HandlerFunc(func(_ context.Context, c net.Conn) {
				<-vanished
				// More than the socket buffers hold, under a write
				// deadline far beyond the user timeout.
				c.SetWriteDeadline(time.Now().Add(time.Minute))
				_, err := c.Write(bytes.Repeat([]byte("r"), 16<<20))
				werr <- err
			})}
		addr := labServer(t, l, s)
		labDial(t, l, addr)
		waitActive(t, s, 1)
		if err := l.A.Vanish(); err != nil {
			t.Fatal(err)
		}
		close(vanished)
		took := waitFreed(t, s, limit)
		if err := <-werr; !errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("write to a vanished peer: %v, want connection timed out", err)
		}
		t.Logf("reply in flight: slot freed %s after the peer vanished", took)
	})
	t.Run("control: without them the slot is held", func(t *testing.T) {
		l := netlab.ForTest(t)
		s := &Server{KeepAlive: net.KeepAliveConfig{Idle: -1}, UserTimeout: -1,
			Handler: HandlerFunc(func(_ context.Context, c net.Conn) { io.Copy(io.Discard, c) })}
		addr := labServer(t, l, s)
		labDial(t, l, addr)
		waitActive(t, s, 1)
		if err := l.A.Vanish(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(limit) // the point: nothing frees it in that time
		if n := s.ActiveConns(); n != 1 {
			t.Fatalf("ActiveConns = %d: something else freed the slot", n)
		}
	})
}

// A live peer that says nothing keeps its slot well past the user timeout
// and many probe intervals: its kernel answers the probes (a human at the
// prompt, a tms client waiting for the go-ahead). On loopback: nothing is
// lost there.
func TestLiveIdlePeerKeepsItsSlot(t *testing.T) {
	s := &Server{KeepAlive: fastDetect.ka, UserTimeout: fastDetect.user, Handler: HandlerFunc(echo)}
	addr := startFull(t, s, 0)
	c := dialFrom(t, "127.0.0.1", addr)
	waitActive(t, s, 1)
	time.Sleep(2 * fastDetect.user) // the point: idle for twice the user timeout
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("still here"))
	got := make([]byte, len("still here"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "still here" {
		t.Fatalf("after idling: %q, %v", got, err)
	}
}

// Why UserTimeoutFor exists: with TCP_USER_TIMEOUT set, Linux ends a
// connection whose peer keeps its window closed that long although the
// peer's kernel answers every probe, a live reader that merely paused.
// So the user timeout must not be shorter than a server's write timeout.
func TestUserTimeoutEndsAPausedReader(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	reader, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close() // alive throughout, never reads
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := DetectVanishedPeer(c, net.KeepAliveConfig{}, time.Second); err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		if _, err = c.Write(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("write to a paused reader with a 1 s user timeout: %v; want connection timed out (a kernel before 5.11 keeps such a connection)", err)
	}
}

func TestUserTimeoutFor(t *testing.T) {
	for _, tc := range []struct{ write, want time.Duration }{
		{0, DefaultUserTimeout},
		{10 * time.Second, DefaultUserTimeout},
		{30 * time.Second, DefaultUserTimeout},
		{2 * time.Minute, 2*time.Minute + 15*time.Second},
	} {
		if got := UserTimeoutFor(tc.write); got != tc.want {
			t.Errorf("UserTimeoutFor(%s) = %s, want %s", tc.write, got, tc.want)
		}
	}
}
