// Package redistest runs a real redis-server for tests and benchmarks: on
// a free loopback port, in a scratch directory, with an append-only file so
// that it can be stopped and started again without losing what it stored.
// No mock: the Redis store is tested against the engine it runs on.
//
// It is internal because it is support for this module's tests, not an
// API: it fails tests rather than returning errors (New), and changes
// whenever a test needs another fault. The process itself is
// internal/redisproc's, which bench uses without linking testing.
package redistest

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/redisproc"
	"github.com/tcplab/tcplab/internal/testkit"
)

// Server is one redis-server process (internal/redisproc), which may be
// stopped and started again on the same port and directory.
type Server = redisproc.Server

// Proxy is a TCP proxy to a Redis server that can be pointed elsewhere or
// cut, as a failover or a partition would (internal/redisproc).
type Proxy = redisproc.Proxy

// New starts a redis-server for a test and stops it when the test ends.
// The test fails (never skips) if there is no redis-server. Its port is
// testkit.StaticPort's, reserved for the test: an ephemeral one could be
// taken by another test's outgoing connection while Redis is down between
// Stop and Start.
func New(tb testing.TB, args ...string) *Server {
	tb.Helper()
	s := &Server{Port: testkit.StaticPort(tb), Dir: tb.TempDir(), Args: args}
	if err := startOnAFreePort(tb, s); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Kill() })
	return s
}

// startOnAFreePort starts s, and if its port was taken meanwhile (by a
// program that does not reserve its ports, such as another worktree's
// older tests), starts it on another reserved port: a first start may
// change its port, a restart may not.
func startOnAFreePort(tb testing.TB, s *Server) error {
	tb.Helper()
	var err error
	for range 5 {
		if err = s.Start(); err == nil || !strings.Contains(err.Error(), "Address already in use") {
			return err
		}
		s.Port = testkit.StaticPort(tb)
	}
	return err
}

// NewTLS is New for a server that speaks only TLS, with a certificate for
// "localhost" and 127.0.0.1 signed by a fresh authority (Server.CAFile).
// Clients trust it with SSL_CERT_FILE, as any Go program does.
func NewTLS(tb testing.TB, args ...string) *Server {
	tb.Helper()
	ca := testkit.NewCA(tb, "redistest CA")
	cert, key := ca.Issue(tb, "localhost", "server")
	s := &Server{Port: testkit.StaticPort(tb), Dir: tb.TempDir(), Args: args, CAFile: ca.CertFile, CertFile: cert, KeyFile: key,
		ClientTLS: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	if err := startOnAFreePort(tb, s); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Kill() })
	return s
}

// NewProxy starts a proxy to target (host:port) for a test and stops it
// when the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p, err := redisproc.StartProxy(target)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}
