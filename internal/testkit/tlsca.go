package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test: its certificates and
// keys are generated in memory and written as PEM files under the test's
// temporary directory, so no key is ever committed.
type CA struct {
	Name     string
	CertFile string // the CA certificate, PEM: what --tls-ca and --tls-client-ca take
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	dir      string
}

// NewCA makes a CA called name, its certificate written to a file in a
// fresh temporary directory.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, key := makeCert(tb, tmpl, nil, nil)
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Name: name, cert: cert, key: key, dir: tb.TempDir()}
	ca.CertFile = filepath.Join(ca.dir, "ca.crt")
	writePEM(tb, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Issue makes a certificate called cn, signed by the CA, for the server
// names localhost and 127.0.0.1 and for client authentication, and writes
// it and its key as PEM files (named after file) in the CA's directory.
func (ca *CA) Issue(tb testing.TB, cn, file string) (certFile, keyFile string) {
	tb.Helper()
	return ca.issue(tb, cn, file, time.Time{}, time.Time{})
}

func (ca *CA) issue(tb testing.TB, cn, file string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	tb.Helper()
	tmpl := &x509.Certificate{
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, key := makeCert(tb, tmpl, ca.cert, ca.key)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile = filepath.Join(ca.dir, file+".crt")
	keyFile = filepath.Join(ca.dir, file+".key")
	writePEM(tb, certFile, "CERTIFICATE", der)
	writePEM(tb, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// KeyPair is Issue's certificate and key for cn, loaded for a tls.Config.
func (ca *CA) KeyPair(tb testing.TB, cn string) tls.Certificate {
	tb.Helper()
	c, err := tls.LoadX509KeyPair(ca.Issue(tb, cn, cn))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Intermediate makes a CA called name signed by ca, as a public CA
// signs servers' certificates through an intermediate: a server sends
// the intermediate's certificate after its own (ChainFile), and clients
// trust only the root.
func (ca *CA) Intermediate(tb testing.TB, name string) *CA {
	tb.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, key := makeCert(tb, tmpl, ca.cert, ca.key)
	cert, _ := x509.ParseCertificate(der)
	in := &CA{Name: name, cert: cert, key: key, dir: tb.TempDir()}
	in.CertFile = filepath.Join(in.dir, "ca.crt")
	writePEM(tb, in.CertFile, "CERTIFICATE", der)
	return in
}

// ChainFile writes a certificate file that holds certFile's certificate
// followed by ca's (an intermediate's), as servers are given a chain.
func (ca *CA) ChainFile(tb testing.TB, certFile string) string {
	tb.Helper()
	leaf, err := os.ReadFile(certFile)
	if err != nil {
		tb.Fatal(err)
	}
	chain := filepath.Join(ca.dir, filepath.Base(certFile)+".chain")
	if err := os.WriteFile(chain, append(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...), 0o600); err != nil {
		tb.Fatal(err)
	}
	return chain
}

// IssueValid is Issue with a certificate valid from notBefore to
// notAfter: expired, not yet valid, or about to expire.
func (ca *CA) IssueValid(tb testing.TB, cn, file string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	tb.Helper()
	return ca.issue(tb, cn, file, notBefore, notAfter)
}

// makeCert makes a fresh P-256 key and a certificate for it from tmpl,
// valid from an hour ago for a day (unless tmpl gives its own validity)
// with a random serial, signed by parent and parentKey, or self-signed
// when parent is nil.
func makeCert(tb testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.SerialNumber = serial(tb)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	return der, key
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func writePEM(tb testing.TB, file, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// CopyFile copies from to to (mode 0600), as an operator renewing a
// certificate or key file in place does.
func CopyFile(tb testing.TB, from, to string) {
	tb.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}
