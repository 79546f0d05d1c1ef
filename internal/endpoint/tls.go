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
	"slices"
	"strings"
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
	warnings                        atomic.Pointer[[]string] // of the load in current
	config                          *tls.Config              // hands out current
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
// says why. A renewal loads whole or not at all: every PEM block of the
// certificate and CA files must parse, nothing but whitespace may follow
// the last one, the chain after the leaf must be the leaf's (each
// certificate signed by the next), the key must match, and the
// certificates must be valid now. One that expires within ExpiryWarning
// loads, with a warning (Warnings).
func (s *TLSServer) Reload() error {
	cert, chain, err := loadKeyPair(s.certFile, s.keyFile)
	if err != nil {
		return err
	}
	warnings, err := checkValidity(chain, time.Now())
	if err != nil {
		return fmt.Errorf("TLS certificate %s: %w", s.certFile, err)
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
	s.warnings.Store(&warnings)
	return nil
}

// ExpiryWarning is how close to its end a certificate that loads is
// warned about (Warnings): a week leaves time to renew it.
const ExpiryWarning = 7 * 24 * time.Hour

// Warnings says what the last successful load found wrong but not
// fatal: a certificate that expires within ExpiryWarning. svr logs each
// as a WARN.
func (s *TLSServer) Warnings() []string {
	if w := s.warnings.Load(); w != nil {
		return *w
	}
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
		cert, _, err := loadKeyPair(certFile, keyFile)
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

// loadKeyPair loads a certificate file (the leaf, then the chain, if
// any) and its key, each read whole (see readCerts and wholePEM), the
// chain checked to be the leaf's and the key to match the leaf. It also
// returns the certificates, leaf first.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, []*x509.Certificate, error) {
	certPEM, err := readPEMFile(certFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("TLS certificate: %w", err)
	}
	chain, err := readCerts(certPEM)
	if err == nil {
		err = checkChain(chain)
	}
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	keyPEM, err := readPEMFile(keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("TLS key: %w", err)
	}
	blocks, err := wholePEM(keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("TLS key %s: %w", keyFile, err)
	}
	if slices.ContainsFunc(blocks, encryptedKey) {
		// Go's own error is "failed to parse private key".
		return tls.Certificate{}, nil, fmt.Errorf("TLS key %s: the key is encrypted (under a passphrase); give it unencrypted, e.g. openssl pkey -in %s -out KEYFILE", keyFile, keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return cert, chain, nil
}

// encryptedKey reports whether b is a private key under a passphrase:
// PKCS#8 encrypted, or the older PEM encryption (Proc-Type 4,ENCRYPTED).
func encryptedKey(b *pem.Block) bool {
	return b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED")
}

// readPEMFile reads a PEM file without the byte order mark an editor may
// put first: Go's PEM parsing finds a block only at the start of the data
// or of a line, so behind a mark the first block (a bundle's first CA, a
// chain's leaf) would be skipped.
func readPEMFile(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	return bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), err
}

func loadCAs(file string) (*x509.CertPool, error) {
	caPEM, err := readPEMFile(file)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	cas, err := readCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS CA %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return pool, nil
}

// errCutShort is wholePEM's error: what follows the last PEM block is
// not whitespace, as in a file read while it is being written. Go's PEM
// parsing stops quietly there, so a certificate chain would load without
// its intermediate, or a CA bundle without its last CAs, and clients
// would fail until the next reload.
var errCutShort = errors.New("something other than whitespace after its last PEM block: a block cut short (being written? write the new file beside the old and rename it into place)")

// wholePEM returns the PEM blocks of data, or errCutShort if anything
// but whitespace follows the last one, or an error if a "-----BEGIN"
// line anywhere does not begin a block that decodes. (Text before a block, such as
// the "subject=" lines openssl writes, is PEM's and is skipped.)
func wholePEM(data []byte) ([]*pem.Block, error) {
	whole := data
	var blocks []*pem.Block
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		blocks = append(blocks, block)
		data = rest
	}
	if len(blocks) > 0 && len(bytes.TrimSpace(data)) > 0 {
		return nil, errCutShort
	}
	if n := bytes.Count(whole, []byte("-----BEGIN")); n != len(blocks) {
		// pem.Decode skips a block it cannot decode and goes on at the
		// next "-----BEGIN": a block cut short in the middle of a file
		// (bundles concatenated, one of them cut) would vanish quietly.
		return nil, fmt.Errorf("%d \"-----BEGIN\" lines but %d whole PEM blocks: a block cut short or damaged", n, len(blocks))
	}
	return blocks, nil
}

// readCerts parses a file of PEM certificates whole: each block must be
// a certificate that parses, and nothing but whitespace may follow the
// last (wholePEM).
func readCerts(data []byte) ([]*x509.Certificate, error) {
	blocks, err := wholePEM(data)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(blocks, func(b *pem.Block) bool { return b.Type == "CERTIFICATE" }) {
		return nil, errors.New("no PEM certificate in it")
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, not a CERTIFICATE", i+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// checkChain checks that each certificate of a server's chain is signed
// by the next, so the chain leads from the leaf to its issuer's issuer:
// a chain that does not is sent to every client, and fails every one.
func checkChain(chain []*x509.Certificate) error {
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("certificate %d (%q) did not sign certificate %d (%q): %w", i+2, certName(chain[i+1]), i+1, certName(chain[i]), err)
		}
	}
	return nil
}

// checkValidity refuses a chain with a certificate that is not valid at
// now (expired, or not yet valid: a server presenting it fails every
// client) and warns of one that expires within ExpiryWarning.
func checkValidity(chain []*x509.Certificate, now time.Time) (warnings []string, err error) {
	const day = "2006-01-02 15:04:05 UTC"
	for i, c := range chain {
		switch {
		case now.Before(c.NotBefore):
			return nil, fmt.Errorf("certificate %d (%q) is not valid before %s", i+1, certName(c), c.NotBefore.UTC().Format(day))
		case now.After(c.NotAfter):
			return nil, fmt.Errorf("certificate %d (%q) expired on %s", i+1, certName(c), c.NotAfter.UTC().Format(day))
		case c.NotAfter.Sub(now) < ExpiryWarning:
			warnings = append(warnings, fmt.Sprintf("certificate %d (%q) expires on %s, in %s: renew it", i+1, certName(c), c.NotAfter.UTC().Format(day), c.NotAfter.Sub(now).Round(time.Minute)))
		}
	}
	return warnings, nil
}

// certName is how an error names a certificate: its common name, or its
// whole subject.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// ErrNotTLS is Handshake's error for a client whose first byte cannot begin
// a TLS handshake: a plaintext client (the tutorial's wps.py, nc) talking
// to a TLS server. The caller may answer it in plaintext, as net/http
// answers an HTTP request sent to an HTTPS port.
var ErrNotTLS = errors.New("tls handshake: the client speaks plaintext, not TLS")

// recordTypeHandshake is the first byte of every TLS ClientHello.
const recordTypeHandshake = 0x16
