// Package redistest runs a real redis-server for tests and benchmarks: on
// a free loopback port, in a scratch directory, with an append-only file so
// that it can be stopped and started again without losing what it stored.
// No mock: the Redis store is tested against the engine it runs on.
//
// It is internal because it is support for this module's tests and for
// bench, not an API: it fails tests rather than returning errors (New),
// and changes whenever a test needs another fault.
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// Server is one redis-server process, which may be stopped and started
// again on the same port and directory.
type Server struct {
	Port int
	Dir  string   // working directory: the append-only file lives here
	Args []string // extra redis-server arguments, e.g. "--requirepass", "pw"

	// CAFile, set by NewTLS, is the PEM certificate of the authority
	// that signed the server's certificate (for "localhost" and
	// 127.0.0.1); the server then speaks TLS only.
	CAFile            string
	certFile, keyFile string      // the server's certificate and key
	tls               *tls.Config // client side, trusting CAFile

	mu   sync.Mutex // guards cmd, done and log
	cmd  *exec.Cmd
	done chan struct{}
	log  *testkit.SafeBuffer // what this run of redis-server printed
}

// serverPath returns the redis-server binary, or an error that says how to get it.
func serverPath() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found: run the tests with scripts/test.sh, which installs it (apt-get install redis-server)")
	}
	return p, nil
}

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

// Start starts a redis-server on 127.0.0.1:port with its data in dir
// (created if need be).
func Start(dir string, port int, args ...string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{Port: port, Dir: dir, Args: args}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the store URL for key, e.g. redis://127.0.0.1:PORT/0?key=KEY,
// with extra query parameters appended ("lease=1s"). With TLS it is
// rediss://localhost:PORT/0?key=KEY.
func (s *Server) URL(key string, extra ...string) string {
	u := fmt.Sprintf("redis://%s/0?key=%s", s.Addr(), key)
	if s.CAFile != "" {
		u = fmt.Sprintf("rediss://localhost:%d/0?key=%s", s.Port, key)
	}
	for _, e := range extra {
		u += "&" + e
	}
	return u
}

// Start starts (or starts again) the server and waits until it answers
// PING, for up to 10 s.
func (s *Server) Start() error {
	path, err := serverPath()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("redis-server already running")
	}
	// Start holds mu until Redis answers, so Stop and Kill wait for it.
	port := []string{"--port", strconv.Itoa(s.Port)}
	if s.CAFile != "" {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.Port),
			"--tls-cert-file", s.certFile,
			"--tls-key-file", s.keyFile,
			"--tls-ca-cert-file", s.CAFile,
			"--tls-auth-clients", "no"}
	}
	args := append(append(port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "yes",
		"--dir", s.Dir,
		"--daemonize", "no",
		"--logfile", "",
		"--loglevel", "warning",
	), s.Args...)
	cmd := exec.Command(path, args...)
	s.log = new(testkit.SafeBuffer)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr(), s.password(), s.tls); err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("redis-server exited at start: %s", strings.TrimSpace(s.log.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			s.cmd = nil
			return fmt.Errorf("redis-server on %s did not answer within 10s: %s", s.Addr(), strings.TrimSpace(s.log.String()))
		}
	}
}

func (s *Server) password() string {
	for i, a := range s.Args {
		if a == "--requirepass" && i+1 < len(s.Args) {
			return s.Args[i+1]
		}
	}
	return ""
}

// ping sends PING (after AUTH when password is set) and wants +PONG; a
// server still loading its append-only file answers -LOADING instead.
func ping(addr, password string, tlsConfig *tls.Config) error {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: time.Second}
	if tlsConfig != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, tlsConfig)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	if password != "" {
		fmt.Fprintf(c, "AUTH %s\r\n", password)
		if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
			return fmt.Errorf("auth: %q %v", line, err)
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

// Stop stops the server as an operator would (SIGTERM: Redis flushes its
// append-only file and exits), and waits for it.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Kill kills the server (SIGKILL: no flush), and waits for it. Only bytes
// already written to the append-only file survive; with
// "--appendfsync always" that is every acknowledged write.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server did not exit within 10s of %v", sig)
	}
}

// Pid is the process id of the running redis-server, or 0.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// NewTLS is New for a server that speaks only TLS, with a certificate for
// "localhost" and 127.0.0.1 signed by a fresh authority (Server.CAFile).
// Clients trust it with SSL_CERT_FILE, as any Go program does.
func NewTLS(tb testing.TB, args ...string) *Server {
	tb.Helper()
	ca := testkit.NewCA(tb, "redistest CA")
	cert, key := ca.Issue(tb, "localhost", "server")
	s := &Server{Port: testkit.StaticPort(tb), Dir: tb.TempDir(), Args: args, CAFile: ca.CertFile, certFile: cert, keyFile: key,
		tls: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	if err := startOnAFreePort(tb, s); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Kill() })
	return s
}
