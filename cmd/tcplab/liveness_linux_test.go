package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/testkit"
)

// servedSockopts finds, in the running process pid, the socket of the
// connection whose peer is client, and reads its keep-alive and
// TCP_USER_TIMEOUT settings through a copy of its descriptor
// (pidfd_getfd). It waits for the server to accept the connection.
func servedSockopts(t *testing.T, pid int, client net.Addr) (keepalive, idle, userMS int) {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Skipf("cannot inspect the server's sockets (pidfd_open: %v)", err)
	}
	defer unix.Close(pidfd)
	want := client.(*net.TCPAddr).AddrPort()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		for _, e := range ents {
			target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", e.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:") {
				continue
			}
			n, _ := strconv.Atoi(e.Name())
			fd, err := unix.PidfdGetfd(pidfd, n, 0)
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
				t.Skipf("cannot inspect the server's sockets (pidfd_getfd: %v)", err)
			}
			if err != nil {
				continue
			}
			peer, _ := unix.Getpeername(fd)
			if matchPeer(peer, want.Port(), want.Addr().Unmap().As4()) {
				var errs []error
				get := func(level, opt int) int {
					v, err := unix.GetsockoptInt(fd, level, opt)
					errs = append(errs, err)
					return v
				}
				keepalive = get(unix.SOL_SOCKET, unix.SO_KEEPALIVE)
				idle = get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
				userMS = get(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
				unix.Close(fd)
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				return
			}
			unix.Close(fd)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket of pid %d has the peer %s within 10s", pid, client)
		}
		time.Sleep(10 * time.Millisecond) // polling: another process's sockets give no event
	}
}

// matchPeer reports whether sa, a socket's peer, is the IPv4 address a4
// (as itself or v4-mapped) at port.
func matchPeer(sa unix.Sockaddr, port uint16, a4 [4]byte) bool {
	switch p := sa.(type) {
	case *unix.SockaddrInet4:
		return p.Port == int(port) && p.Addr == a4
	case *unix.SockaddrInet6:
		mapped := [16]byte{10: 0xff, 11: 0xff}
		copy(mapped[12:], a4[:])
		return p.Port == int(port) && p.Addr == mapped
	}
	return false
}

// Every server of the binary sets keep-alive and TCP_USER_TIMEOUT on the
// connections it serves, read from the live process's own sockets. The
// user timeout is never shorter than the server's write timeout: with
// TCP_USER_TIMEOUT set, Linux (5.11 and later) also ends a connection
// whose receive window stays closed that long, even though the peer
// answers every probe, so a shorter one would cut off a live reader that
// pauses (a pager, Ctrl-Z) before the --write-timeout the operator chose.
// Measured before the fix: tms --keep --write-timeout 3m dropped such a
// reader after 48 s with "connection timed out".
func TestServedConnsGetKeepAliveAndUserTimeout(t *testing.T) {
	bin := testkit.Binary(t)
	cases := []struct {
		name   string
		args   []string
		first  string // what the client sends: tms defers accept until data
		idle   int    // TCP_KEEPIDLE, seconds
		userMS int
	}{
		// While a message arrives tms probes its client every second, so
		// that a guessed end can tell a dark link from a quiet client
		// (multicopy's watchLiveness); the other servers keep 15 s.
		{"tms --keep", []string{"tms", "--keep", "--gap", "1m", "0"}, "x", 1, 45000},
		{"tms --keep --write-timeout 2m", []string{"tms", "--keep", "--gap", "1m", "--write-timeout", "2m", "0"}, "x", 1, 135000},
		{"tms --write-timeout 2m (one client)", []string{"tms", "--no-wait", "--gap", "1m", "--write-timeout", "2m", "0"}, "x", 1, 135000},
		{"strsvr", []string{"strsvr", "0"}, "", 15, 45000},
		{"strsvr --write-timeout 2m", []string{"strsvr", "--write-timeout", "2m", "0"}, "", 15, 135000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testkit.Start(t, nil, bin, tc.args...)
			port := listeningPort(t, srv)
			c := holdFrom(t, "127.0.0.1", net.JoinHostPort("127.0.0.1", port), tc.first)
			// The server sets the options just after accept, in the
			// connection's goroutine, before it serves the client:
			// strsvr has set them all once it answers a letter. tms sets
			// keep-alive and the user timeout before it says where the
			// client is, then, as the message starts to arrive, the 1 s
			// probes of watchLiveness: no output of tms follows that
			// step, and another process's socket options give no event,
			// so after the line the test reads them until they are set.
			var ka, idle, user int
			if tc.first != "" {
				srv.WaitFor(t, "client is at", 10*time.Second)
				testkit.Poll(10*time.Second, func() bool {
					ka, idle, user = servedSockopts(t, srv.Cmd.Process.Pid, c.LocalAddr())
					return ka == 1 && idle == tc.idle && user == tc.userMS
				})
			} else {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("a")); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Read(make([]byte, 1)); err != nil {
					t.Fatalf("no answer to a letter: %v", err)
				}
				ka, idle, user = servedSockopts(t, srv.Cmd.Process.Pid, c.LocalAddr())
			}
			if ka != 1 || idle != tc.idle || user != tc.userMS {
				t.Fatalf("served socket: SO_KEEPALIVE %d, TCP_KEEPIDLE %d s, TCP_USER_TIMEOUT %d ms; want 1, %d s, %d ms", ka, idle, user, tc.idle, tc.userMS)
			}
		})
	}
}
