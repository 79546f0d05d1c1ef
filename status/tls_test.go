package status

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// tlsConfig is a server configuration with a certificate from a new CA,
// and a client configuration that trusts that CA.
func tlsConfig(t *testing.T) (server, client *tls.Config) {
	ca := testkit.NewCA(t, "tcplab server CA")
	return &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, "svr")}}, &tls.Config{RootCAs: ca.Pool()}
}

// The handshake rate limit counts an IPv6 client by its /64, as the
// per-address limits do: a host is routinely given a whole /64, so one
// client rotating through its addresses must not get a fresh burst of
// handshakes (each a public-key signature) with each. IPv4 counts by
// address.
func TestTLSHandshakeLimitPerIPv6Slash64(t *testing.T) {
	var log testkit.SafeBuffer
	svc := newService(t)
	svc.TLS, _ = tlsConfig(t)
	svc.Logger = slog.New(slog.NewTextHandler(&log, nil))
	svc.Limiter = NewClientLimiter(0.001, 1) // handshakes: 2, then none for long
	limited := func(remote string) bool {
		t.Helper()
		a, b := net.Pipe()
		b.Close() // the handshake fails at once: only the limit is looked at
		defer a.Close()
		before := strings.Count(log.String(), "over the handshake rate limit")
		svc.ServeConn(context.Background(), remoteConn{a, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(remote))})
		return strings.Count(log.String(), "over the handshake rate limit") > before
	}
	for i, c := range []struct {
		remote  string
		limited bool
	}{
		{"[2001:db8:0:1::1]:40000", false},
		{"[2001:db8:0:1::2]:40000", false},
		{"[2001:db8:0:1:ffff::3]:40000", true}, // the same /64: its burst is spent
		{"[2001:db8:0:2::1]:40000", false},     // another /64
		{"192.0.2.1:40000", false},
		{"192.0.2.2:40000", false}, // IPv4: each address its own
	} {
		if got := limited(c.remote); got != c.limited {
			t.Errorf("%d: %s limited %v, want %v; log:\n%s", i, c.remote, got, c.limited, log.String())
		}
	}
	if strings.Contains(log.String(), "client is at") {
		t.Fatalf("failed handshakes reached the service:\n%s", log.String())
	}
}

// remoteConn is a net.Conn with the peer address a test chooses.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// With TLS a plaintext client gets NotTLSAnswer, a TLS client is served,
// and a client outside Nets is refused as without TLS, before any
// handshake: closed without a word.
func TestTLSService(t *testing.T) {
	svc := newService(t)
	cfg, clientCfg := tlsConfig(t)
	svc.TLS = cfg
	addr := startService(t, svc, 0)
	if out := ask(t, addr, []byte("w")); out != NotTLSAnswer {
		t.Fatalf("plaintext client: %q, want %q", out, NotTLSAnswer)
	}
	c, err := tls.Dial("tcp", addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("w")); err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(c); err != nil || !strings.Contains(string(out), "load average") {
		t.Fatalf("TLS client: %q, %v", out, err)
	}

	svc = newService(t)
	svc.TLS = cfg
	svc.Nets = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	if out := ask(t, startService(t, svc, 0), []byte("w")); out != "" {
		t.Fatalf("client outside Nets: %q, want nothing", out)
	}
}
