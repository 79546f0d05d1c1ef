package endpoint

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fileOf returns a duplicate of a socket's descriptor as systemd would pass
// it, the original closed.
func fileOf(t *testing.T, s interface{ File() (*os.File, error) }, c interface{ Close() error }) *os.File {
	t.Helper()
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return f
}

// passedListener is a TCP listener opened the plain way (no options), as
// systemd-socket-activate opens one, handed over as a file.
func passedListener(t *testing.T) *os.File {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return fileOf(t, ln.(*net.TCPListener), ln)
}

func sockopt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), level, opt) })
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// A socket from systemd gets the options the server would set on its own
// listener: for ListenForRequests deferred accept and no keep-alive on
// accepted connections; for Listen keep-alive on.
func TestActivatedListenerGetsTheServersOptions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		take      func(*Activated) (net.Listener, error)
		deferred  bool
		keepAlive int
	}{
		{"ListenForRequests", (*Activated).ListenForRequests, true, 0},
		{"Listen", (*Activated).Listen, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := activated([]*os.File{passedListener(t)})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tc.take(a)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if got := sockopt(t, ln.(syscall.Conn), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT) != 0; got != tc.deferred {
				t.Fatalf("TCP_DEFER_ACCEPT set: %v, want %v", got, tc.deferred)
			}
			if a.Port() != ln.Addr().(*net.TCPAddr).Port {
				t.Fatalf("Port() %d, listener on %s", a.Port(), ln.Addr())
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("w"))
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			if _, ok := sc.(*net.TCPConn); !ok {
				t.Fatalf("accepted a %T, want *net.TCPConn", sc)
			}
			if got := sockopt(t, sc.(syscall.Conn), unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != tc.keepAlive {
				t.Fatalf("SO_KEEPALIVE on an accepted connection = %d, want %d", got, tc.keepAlive)
			}
		})
	}
}

// A TCP listener and a UDP socket (strsvr's discovery) are sorted out; a
// set tcplab cannot serve is one error.
func TestActivatedSorting(t *testing.T) {
	udp := func() *os.File {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return fileOf(t, pc.(*net.UDPConn), pc)
	}
	if a, err := activated(nil); a != nil || err != nil {
		t.Fatalf("no files: %v, %v", a, err)
	}
	a, err := activated([]*os.File{udp(), passedListener(t)})
	if err != nil {
		t.Fatal(err)
	}
	if a.PacketConn() == nil {
		t.Fatal("the UDP socket was lost")
	}
	a.Close()

	connected := func() *os.File {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return fileOf(t, c.(*net.TCPConn), c)
	}
	unixSocket := func() *os.File {
		ln, err := net.Listen("unix", t.TempDir()+"/s")
		if err != nil {
			t.Fatal(err)
		}
		return fileOf(t, ln.(*net.UnixListener), ln)
	}
	for _, tc := range []struct {
		name  string
		files []*os.File
		want  string
	}{
		{"two listeners", []*os.File{passedListener(t), passedListener(t)}, "more than one TCP socket"},
		{"two UDP sockets", []*os.File{passedListener(t), udp(), udp()}, "more than one UDP socket"},
		{"UDP only", []*os.File{udp()}, "no TCP listening socket"},
		{"Accept=yes", []*os.File{connected()}, "not a listening socket (Accept=yes"},
		{"unix socket", []*os.File{unixSocket()}, "is a unix socket, not TCP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := activated(tc.files)
			if a != nil || err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sockets from systemd: ") {
				t.Fatalf("got %v, %v; want an error with %q", a, err, tc.want)
			}
		})
	}
}

// Without LISTEN_PID naming this process there is nothing to take, even
// with LISTEN_FDS set (it was meant for another process).
func TestSystemdSocketsOnlyForThisProcess(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	if a, err := SystemdSockets(); a != nil || err != nil {
		t.Fatalf("SystemdSockets for another pid: %v, %v", a, err)
	}
}
