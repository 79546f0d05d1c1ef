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
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process, which may be stopped and started
// again on the same port and directory.
type Server struct {
	Port int
	Dir  string   // working directory: the append-only file lives here
	Args []string // extra redis-server arguments, e.g. "--requirepass", "pw"

	// CAFile, set by StartTLS, is the PEM certificate of the authority
	// that signed the server's certificate (for "localhost" and
	// 127.0.0.1); the server then speaks TLS only.
	CAFile string
	tls    *tls.Config // client side, trusting CAFile

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{}

	logMu sync.Mutex
	log   bytes.Buffer
}

// Path returns the redis-server binary, or an error that says how to get it.
func Path() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found: run the tests with scripts/test.sh, which installs it (apt-get install redis-server)")
	}
	return p, nil
}

// New starts a redis-server for a test on a free loopback port and stops it
// when the test ends. The test fails (never skips) if there is no
// redis-server.
func New(tb testing.TB, args ...string) *Server {
	tb.Helper()
	s, err := Start(tb.TempDir(), args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Kill() })
	return s
}

// Start starts a redis-server with its data in dir (created if need be),
// on a free loopback port.
func Start(dir string, args ...string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Port: port, Dir: dir, Args: args}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
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
	path, err := Path()
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
			"--tls-cert-file", filepath.Join(s.Dir, "server.pem"),
			"--tls-key-file", filepath.Join(s.Dir, "server.key"),
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
	s.logMu.Lock()
	s.log.Reset()
	s.logMu.Unlock()
	w := &lockedWriter{mu: &s.logMu, w: &s.log}
	cmd.Stdout, cmd.Stderr = w, w
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
			return fmt.Errorf("redis-server exited at start: %s", strings.TrimSpace(s.Log()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			s.cmd = nil
			return fmt.Errorf("redis-server on %s did not answer within 10s: %s", s.Addr(), strings.TrimSpace(s.Log()))
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

// Log returns what redis-server printed (warnings and errors).
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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

// NewTLS is New for a server that speaks only TLS (see StartTLS).
func NewTLS(tb testing.TB, args ...string) *Server {
	tb.Helper()
	s, err := StartTLS(tb.TempDir(), args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Kill() })
	return s
}

// StartTLS is Start for a server that speaks only TLS, with a certificate
// for "localhost" and 127.0.0.1 signed by a fresh authority written to
// dir/ca.pem (Server.CAFile). Clients trust it with SSL_CERT_FILE, as any
// Go program does.
func StartTLS(dir string, args ...string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	pool, err := writeCerts(dir)
	if err != nil {
		return nil, fmt.Errorf("make TLS certificates: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Port: port, Dir: dir, Args: args, CAFile: filepath.Join(dir, "ca.pem"),
		tls: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// writeCerts writes ca.pem, server.pem and server.key to dir.
func writeCerts(dir string) (*x509.CertPool, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name, kind string
		der        []byte
	}{
		{"ca.pem", "CERTIFICATE", caDER},
		{"server.pem", "CERTIFICATE", der},
		{"server.key", "EC PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		b := pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}
