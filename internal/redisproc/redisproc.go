// Package redisproc runs a real redis-server process: on a loopback port,
// in a scratch directory, with an append-only file so that it can be
// stopped and started again without losing what it stored. The tests use
// it through internal/redistest (which adds a reserved port, a scratch
// directory and cleanup per test); bench uses it directly, so that the
// benchmark program does not link the testing package.
package redisproc

import (
	"bufio"
	"bytes"
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
	"time"
)

// Server is one redis-server process, which may be stopped and started
// again on the same port and directory.
type Server struct {
	Port int
	Dir  string   // working directory: the append-only file lives here
	Args []string // extra redis-server arguments, e.g. "--requirepass", "pw"

	// CAFile, set by redistest.NewTLS, is the PEM certificate of the authority
	// that signed the server's certificate (for "localhost" and
	// 127.0.0.1); the server then speaks TLS only.
	CAFile string
	// CertFile and KeyFile are the server's certificate and key, and
	// ClientTLS the client side's configuration, trusting CAFile: set by
	// redistest.NewTLS along with CAFile.
	CertFile, KeyFile string
	ClientTLS         *tls.Config

	mu   sync.Mutex // guards cmd, done and log
	cmd  *exec.Cmd
	done chan struct{}
	// log is what this run of redis-server printed. exec's copying
	// goroutine writes it while the process runs; it is read only once
	// done is closed (cmd.Wait has returned, the copying has ended).
	log bytes.Buffer
}

// serverPath returns the redis-server binary, or an error that says how to get it.
func serverPath() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found: run the tests with scripts/test.sh, which installs it (apt-get install redis-server)")
	}
	return p, nil
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
			"--tls-cert-file", s.CertFile,
			"--tls-key-file", s.KeyFile,
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
	s.log.Reset()
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr(), s.password(), s.ClientTLS); err == nil {
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
