package endpoint

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestParsePort(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"2000", 2000, true}, {"65535", 65535, true},
		{"65536", 0, false}, {"-1", 0, false}, {"", 0, false}, {"abc", 0, false},
		{"99999999999999999999", 0, false}, {" 80", 0, false}, {"0x50", 0, false},
	}
	for _, tc := range cases {
		got, err := ParsePort(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePort(%q) = %d, %v", tc.in, got, err)
		}
	}
}

// The promised one-line errors, word for word where the kernel's answer is
// certain on loopback.
func TestErrorsAreOneClearLine(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if _, err := Listen(context.Background(), addr); err == nil || err.Error() != "listen "+addr+": address already in use" || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second Listen: %v", err)
	}

	// A port nobody listens on: bind one, note it, let it go.
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	port := strconv.Itoa(free.Addr().(*net.TCPAddr).Port)
	free.Close()
	_, err = Dial(context.Background(), "127.0.0.1", port, time.Second)
	if err == nil || err.Error() != "connect 127.0.0.1:"+port+": connection refused" || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial refused: %v", err)
	}
	_, err = Dial(context.Background(), "nosuch.invalid", "80", time.Second)
	if err == nil || !(err.Error() == "unknown host nosuch.invalid" || strings.HasPrefix(err.Error(), "look up nosuch.invalid")) {
		t.Errorf("Dial unknown host: %v", err)
	}
	if e := DialError("10.1.2.3:80", context.DeadlineExceeded, 5*time.Second); e.Error() != "connect 10.1.2.3:80: timed out after 5s" {
		t.Errorf("DialError timeout: %v", e)
	}
}

// Listen keeps keep-alive on accepted connections; ListenForRequests,
// whose servers bound every connection with deadlines, turns it off.
func TestKeepAliveOnAcceptedConnections(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen func(context.Context, string) (net.Listener, error)
		want   int
	}{
		{"Listen", Listen, 1},
		{"ListenForRequests", ListenForRequests, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tc.listen(context.Background(), "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("w")) // ListenForRequests accepts once bytes arrive
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			raw, err := sc.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var got int
			var serr error
			raw.Control(func(fd uintptr) {
				got, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			})
			if serr != nil || got != tc.want {
				t.Fatalf("SO_KEEPALIVE = %d, %v; want %d", got, serr, tc.want)
			}
		})
	}
}
