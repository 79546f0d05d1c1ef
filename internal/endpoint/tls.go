package endpoint

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// TLSServer is a server's TLS configuration, loaded from PEM files and
// reloadable while the server runs: Reload reads the files again and swaps
// the new certificate in atomically for the handshakes that follow, so
// connections already open are never dropped and a certificate renewed on
// disk needs no restart (svr reloads on SIGHUP). A reload that fails keeps
// the configuration in use.
type TLSServer struct {
	certFile, keyFile, clientCAFile string
	current                         atomic.Pointer[tls.Config]
	config                          *tls.Config // hands out current
}

// NewTLSServer loads certFile and keyFile (PEM; certFile may hold the chain
// after the leaf) and, if clientCAFile is not empty, the CA certificates a
// client's certificate must be signed by: mutual TLS, where a client without
// such a certificate is refused during the handshake. The error is one line
// naming the file at fault.
func NewTLSServer(certFile, keyFile, clientCAFile string) (*TLSServer, error) {
	s := &TLSServer{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	s.config = &tls.Config{
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current.Load(), nil
		},
	}
	return s, nil
}

// Reload reads the files again. On success the next handshakes use the new
// certificate (and client CAs); on failure nothing changes and the error
// says why.
func (s *TLSServer) Reload() error {
	cert, err := loadKeyPair(s.certFile, s.keyFile)
	if err != nil {
		return err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// No resumption: every connection is one request, so tickets
		// would save nothing, and a resumed session would skip checking
		// a client certificate against client CAs reloaded since.
		SessionTicketsDisabled: true,
	}
	if s.clientCAFile != "" {
		pool, err := loadCAs(s.clientCAFile)
		if err != nil {
			return err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	s.current.Store(cfg)
	return nil
}

// Leaf is the certificate handshakes present now.
func (s *TLSServer) Leaf() *x509.Certificate {
	return s.current.Load().Certificates[0].Leaf
}

// MutualTLS reports whether clients must present a certificate.
func (s *TLSServer) MutualTLS() bool { return s.clientCAFile != "" }

// Config is the configuration to serve with: each handshake takes whatever
// Reload stored last.
func (s *TLSServer) Config() *tls.Config { return s.config }

// Handshake is the package function Handshake with s's configuration.
func (s *TLSServer) Handshake(ctx context.Context, conn net.Conn, timeout time.Duration) (*tls.Conn, error) {
	return Handshake(ctx, conn, s.Config(), timeout)
}

// Handshake makes conn a TLS server connection with cfg and completes the
// handshake within timeout (and before ctx ends), so a client that
// connects and then stalls, or never finishes, holds its slot for no
// longer than that. The deadline is cleared again on success. A client
// whose first byte shows it speaks plaintext gets ErrNotTLS at once, not
// after the timeout (the one-byte request "w" would leave a handshake
// waiting for the rest of a record header). On failure conn is not closed.
func Handshake(ctx context.Context, conn net.Conn, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	isTLS, err := firstByteIsTLS(conn)
	switch {
	case err != nil && IsTimeout(err):
		return nil, fmt.Errorf("tls handshake: no handshake within %s", timeout)
	case err != nil:
		return nil, fmt.Errorf("tls handshake: %w", Cause(err))
	case !isTLS:
		return nil, ErrNotTLS
	}
	tc := tls.Server(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if IsTimeout(err) {
			return nil, fmt.Errorf("tls handshake: no handshake within %s", timeout)
		}
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return tc, nil
}

// ClientTLS is the configuration of a client that trusts only the CAs in
// caFile and, if certFile is not empty, presents that certificate (for a
// server that requires one: mutual TLS). The error is one line naming the
// file at fault.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, err := loadCAs(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

type tlsKey struct{}

// WithTLS returns a context under which Dial speaks TLS with cfg: the
// handshake is part of the dial, its failure a dial error. It lets a
// client's TLS settings reach every connection it makes (wps --hosts asks
// a whole fleet) without each layer between taking a parameter for them.
func WithTLS(ctx context.Context, cfg *tls.Config) context.Context {
	return context.WithValue(ctx, tlsKey{}, cfg)
}

// dialTLS completes a TLS handshake on conn if ctx carries a configuration
// (see WithTLS); otherwise it returns conn as is. On failure conn is closed.
func dialTLS(ctx context.Context, conn net.Conn, host, addr string) (net.Conn, error) {
	cfg, _ := ctx.Value(tlsKey{}).(*tls.Config)
	if cfg == nil {
		return conn, nil
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		if IsTimeout(err) {
			return nil, fmt.Errorf("tls handshake with %s: timed out", addr)
		}
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, Cause(err))
	}
	return tc, nil
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS certificate: %w", err)
	}
	if err := wholePEM(certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	caPEM, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	if err := wholePEM(caPEM); err != nil {
		return nil, fmt.Errorf("TLS CA %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// wholePEM reports an error if data ends in a PEM block cut short, as a
// file read while it is being written does. Go's PEM parsing stops quietly
// at such a block, so a certificate chain would load without its
// intermediates, or a CA bundle without its last CAs, and clients would
// fail until the next reload.
func wholePEM(data []byte) error {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		data = rest
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return errors.New("a PEM block is cut short (being written? write the new file beside it and rename it into place)")
	}
	return nil
}

// ErrNotTLS is Handshake's error for a client whose first byte cannot begin
// a TLS handshake: a plaintext client (the tutorial's wps.py, nc) talking
// to a TLS server. The caller may answer it in plaintext, as net/http
// answers an HTTP request sent to an HTTPS port.
var ErrNotTLS = errors.New("tls handshake: the client speaks plaintext, not TLS")

// recordTypeHandshake is the first byte of every TLS ClientHello.
const recordTypeHandshake = 0x16
