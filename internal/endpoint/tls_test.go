package endpoint

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// tlsEcho serves s on a loopback listener: each connection is handshaken
// with a 30 s deadline, its handshake error (or nil) sent on errs, and then
// echoed. It returns the address; everything stops when the test ends.
func tlsEcho(t *testing.T, s *TLSServer) (addr string, errs <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				tc, err := s.Handshake(context.Background(), c, 30*time.Second)
				ch <- err
				if err == nil {
					io.Copy(tc, tc)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

func dialTLSTest(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func echoOnce(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

// A reload swaps the certificate for later handshakes and keeps open
// connections working; a reload from bad files keeps the certificate in use.
func TestTLSServerReload(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "first", "svr")
	s, err := NewTLSServer(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := tlsEcho(t, s)
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}

	held, err := dialTLSTest(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if cn := held.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "first" {
		t.Fatalf("first certificate: %q", cn)
	}

	// Renew on disk: a new certificate written over the same files.
	c2, k2 := ca.Issue(t, "second", "renewed")
	testkit.CopyFile(t, c2, certFile)
	testkit.CopyFile(t, k2, keyFile)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err := dialTLSTest(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second" {
		t.Fatalf("after reload: %q", cn)
	}
	echoOnce(t, held, "still here") // the connection from before the reload

	// A broken renewal: the key no longer matches, then a file is gone.
	_, k3 := ca.Issue(t, "third", "third")
	testkit.CopyFile(t, k3, keyFile)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("reload with a mismatched key: %v", err)
	}
	os.Remove(certFile)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("reload without the certificate file: %v", err)
	}
	c, err = dialTLSTest(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second" {
		t.Fatalf("after failed reloads: %q, want the certificate kept", cn)
	}
	echoOnce(t, c, "x")
}

// Mutual TLS: a client with a certificate from the client CA gets through;
// one with no certificate or one from another CA is refused in the
// handshake, on the server's side too.
func TestTLSServerMutual(t *testing.T) {
	serverCA := testkit.NewCA(t, "server CA")
	clientCA := testkit.NewCA(t, "client CA")
	otherCA := testkit.NewCA(t, "other CA")
	certFile, keyFile := serverCA.Issue(t, "svr", "svr")
	s, err := NewTLSServer(certFile, keyFile, clientCA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if !s.MutualTLS() {
		t.Fatal("MutualTLS() false with a client CA")
	}
	addr, errs := tlsEcho(t, s)

	good := clientCA.KeyPair(t, "alice")
	stranger := otherCA.KeyPair(t, "mallory")
	for _, tc := range []struct {
		name    string
		certs   []tls.Certificate
		wantErr string // server side; "" for success
	}{
		{"signed by the client CA", []tls.Certificate{good}, ""},
		{"no certificate", nil, "client didn't provide a certificate"},
		{"signed by another CA", []tls.Certificate{stranger}, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: serverCA.Pool(), ServerName: "localhost"}
			if tc.certs != nil {
				// Sent whatever CAs the server names (Go's client would
				// otherwise keep a stranger's certificate to itself).
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc.certs[0], nil }
			}
			c, err := dialTLSTest(t, addr, cfg)
			if err == nil {
				// TLS 1.3: the client learns of a refusal on its first read.
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("x"))
				_, err = c.Read(make([]byte, 1))
			}
			serr := <-errs
			if tc.wantErr == "" {
				if err != nil || serr != nil {
					t.Fatalf("client %v, server %v", err, serr)
				}
				return
			}
			if serr == nil || !strings.Contains(serr.Error(), tc.wantErr) {
				t.Fatalf("server handshake: %v, want %q", serr, tc.wantErr)
			}
			if err == nil {
				t.Fatal("the client was served")
			}
		})
	}
}

// A client that connects and sends nothing is given up on when the
// handshake deadline passes.
func TestTLSHandshakeDeadline(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "svr", "svr")
	s, err := NewTLSServer(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	start := time.Now()
	_, err = s.Handshake(context.Background(), a, 200*time.Millisecond)
	if err == nil || err.Error() != "tls handshake: no handshake within 200ms" {
		t.Fatalf("Handshake of a silent client: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

// A plaintext client is told apart by its first byte at once, even when
// that is all it sends (wps's "w"), instead of after the handshake timeout.
func TestTLSHandshakeSpotsPlaintext(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "svr", "svr")
	s, err := NewTLSServer(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	addr, errs := tlsEcho(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("w"))
	select {
	case err := <-errs:
		if !errors.Is(err, ErrNotTLS) {
			t.Fatalf("Handshake of a plaintext client: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a plaintext client was not spotted by its first byte (the handshake waits 30 s)")
	}
}

// Under WithTLS, Dial verifies the server against the given CA and the
// host name typed; a server from another CA is a one-line dial error.
func TestDialWithTLS(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "svr", "svr")
	s, err := NewTLSServer(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := tlsEcho(t, s)
	host, port, _ := net.SplitHostPort(addr)

	cfg, err := ClientTLS(ca.CertFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{host, "localhost"} {
		c, err := Dial(WithTLS(context.Background(), cfg), h, port, 5*time.Second)
		if err != nil {
			t.Fatalf("Dial %s: %v", h, err)
		}
		tc, ok := c.(*tls.Conn)
		if !ok {
			t.Fatalf("Dial under WithTLS returned %T", c)
		}
		echoOnce(t, tc, "hello")
		c.Close()
	}

	other := testkit.NewCA(t, "other CA")
	cfg, err = ClientTLS(other.CertFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(WithTLS(context.Background(), cfg), host, port, 5*time.Second)
	want := "tls handshake with " + addr + ": tls: failed to verify certificate: x509: certificate signed by unknown authority"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Dial a server from another CA: %v\nwant %s", err, want)
	}
	// Plain Dial is still plain.
	c, err := Dial(context.Background(), host, port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*tls.Conn); ok {
		t.Fatal("Dial without WithTLS returned a TLS connection")
	}
	c.Close()
}

// Sessions are never resumed: each handshake checks the certificates
// against the files last loaded.
func TestTLSServerNoResumption(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "svr", "svr")
	s, err := NewTLSServer(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := tlsEcho(t, s)
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	for i := range 2 {
		c, err := dialTLSTest(t, addr, client)
		if err != nil {
			t.Fatal(err)
		}
		echoOnce(t, c, "x") // TLS 1.3 tickets arrive after the handshake
		if c.ConnectionState().DidResume {
			t.Fatalf("connection %d resumed a session", i)
		}
		c.Close()
	}
}

// Files that cannot be used give one line naming the file.
func TestTLSLoadErrors(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "svr", "svr")
	_, otherKey := ca.Issue(t, "other", "other")
	dir := t.TempDir()
	garbage := dir + "/garbage.pem"
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o600)
	missing := dir + "/missing.pem"
	// A key under a passphrase, as openssl genpkey -aes256 (PKCS#8) or
	// genrsa -traditional -aes256 (PEM encryption) writes it: before,
	// the error was "tls: failed to parse private key", which does not
	// say what to do.
	encrypted := dir + "/encrypted.key"
	os.WriteFile(encrypted, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("opaque")}), 0o600)
	legacy := dir + "/legacy.key"
	os.WriteFile(legacy, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte("opaque")}), 0o600)
	for _, tc := range []struct {
		name                string
		cert, key, clientCA string
		want                string
	}{
		{"missing cert", missing, keyFile, "", "TLS certificate: open " + missing + ": no such file or directory"},
		{"missing key", certFile, missing, "", "TLS key: open " + missing + ": no such file or directory"},
		{"mismatched", certFile, otherKey, "", "TLS certificate " + certFile + " and key " + otherKey + ": tls: private key does not match public key"},
		{"garbage cert", garbage, keyFile, "", "TLS certificate " + garbage + ": no PEM certificate in it"},
		{"garbage client CA", certFile, keyFile, garbage, "TLS CA " + garbage + ": no PEM certificate in it"},
		{"missing client CA", certFile, keyFile, missing, "TLS CA: open " + missing + ": no such file or directory"},
		{"encrypted key", certFile, encrypted, "", "TLS key " + encrypted + ": the key is encrypted (under a passphrase); give it unencrypted, e.g. openssl pkey -in " + encrypted + " -out KEYFILE"},
		{"legacy encrypted key", certFile, legacy, "", "TLS key " + legacy + ": the key is encrypted (under a passphrase); give it unencrypted, e.g. openssl pkey -in " + legacy + " -out KEYFILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTLSServer(tc.cert, tc.key, tc.clientCA)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	if _, err := ClientTLS(missing, "", ""); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("ClientTLS with a missing CA: %v", err)
	}
	if _, err := ClientTLS(ca.CertFile, certFile, otherKey); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("ClientTLS with a mismatched key: %v", err)
	}
}

// A PEM file caught half written (a renewal copied over it while svr
// reloads) is refused, not half used: Go's PEM parsing stops quietly at a
// block cut short, so a chain whose intermediate is cut off, or a CA
// bundle missing its last CA, would load and then fail clients.
func TestTLSLoadRefusesCutShortPEM(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	other := testkit.NewCA(t, "other CA")
	certFile, keyFile := ca.Issue(t, "svr", "svr")
	leaf, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, err := os.ReadFile(other.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cutChain := dir + "/chain.pem" // the leaf whole, the next certificate cut
	os.WriteFile(cutChain, append(append([]byte{}, leaf...), caPEM[:len(caPEM)/2]...), 0o600)
	cutBundle := dir + "/bundle.pem" // two CAs, the second cut
	os.WriteFile(cutBundle, append(append([]byte{}, caPEM...), otherPEM[:len(otherPEM)/2]...), 0o600)

	if _, err := NewTLSServer(cutChain, keyFile, ""); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("certificate chain cut short: %v", err)
	}
	if _, err := NewTLSServer(certFile, keyFile, cutBundle); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("client CA bundle cut short: %v", err)
	}
	if _, err := ClientTLS(cutBundle, "", ""); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("wps CA bundle cut short: %v", err)
	}

	// A reload that meets one keeps the certificate in use.
	live := dir + "/live.pem"
	testkit.CopyFile(t, certFile, live)
	s, err := NewTLSServer(live, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.CopyFile(t, cutChain, live)
	if err := s.Reload(); err == nil {
		t.Error("reload of a certificate file cut short succeeded")
	}
	if s.Leaf().Subject.CommonName != "svr" {
		t.Errorf("after a failed reload: %q", s.Leaf().Subject.CommonName)
	}
}

// A renewal loads whole or not at all. For every length a certificate
// chain (leaf and intermediate) or a CA bundle (two CAs) may be cut to
// while it is being written, loading either fails or loads what a file of
// that length can only mean: the whole, or the first block when the cut
// falls in the whitespace after it. Before, a chain cut 7 bytes into the
// intermediate's "-----BEGIN" line loaded without the intermediate (every
// client then failed to verify), and so did a bundle cut inside its
// second CA's first line.
func TestTLSRenewalLoadsWholeOrNotAtAll(t *testing.T) {
	root := testkit.NewCA(t, "root CA")
	inter := root.Intermediate(t, "intermediate CA")
	leafFile, keyFile := inter.Issue(t, "svr", "svr")
	chainFile := inter.ChainFile(t, leafFile)
	chain, _ := os.ReadFile(chainFile)
	leaf, _ := os.ReadFile(leafFile)
	other := testkit.NewCA(t, "other CA")
	rootPEM, _ := os.ReadFile(root.CertFile)
	otherPEM, _ := os.ReadFile(other.CertFile)
	bundle := append(append([]byte{}, rootPEM...), otherPEM...)
	wholePool, firstPool := x509.NewCertPool(), x509.NewCertPool()
	wholePool.AppendCertsFromPEM(bundle)
	firstPool.AppendCertsFromPEM(rootPEM)

	dir := t.TempDir()
	cut := filepath.Join(dir, "cut.pem")
	firstOnly := func(p, first []byte) bool { return bytes.Equal(bytes.TrimSpace(p), bytes.TrimSpace(first)) }
	for n := len(leaf) - 1; n <= len(chain); n++ {
		os.WriteFile(cut, chain[:n], 0o600)
		s, err := NewTLSServer(cut, keyFile, "")
		if err != nil {
			continue
		}
		got := len(s.current.Load().Certificates[0].Certificate)
		if got != 2 && !(got == 1 && firstOnly(chain[:n], leaf)) {
			t.Errorf("chain cut at byte %d of %d (%q...) loaded %d certificates", n, len(chain), chain[max(0, n-12):n], got)
		}
	}
	for n := len(rootPEM) - 1; n <= len(bundle); n++ {
		os.WriteFile(cut, bundle[:n], 0o600)
		s, err := NewTLSServer(leafFile, keyFile, cut)
		if err == nil {
			if pool := s.current.Load().ClientCAs; !pool.Equal(wholePool) && !(pool.Equal(firstPool) && firstOnly(bundle[:n], rootPEM)) {
				t.Errorf("client CA bundle cut at byte %d of %d (%q...) loaded in part", n, len(bundle), bundle[max(0, n-12):n])
			}
		}
		cfg, err := ClientTLS(cut, "", "")
		if err == nil && !cfg.RootCAs.Equal(wholePool) && !(cfg.RootCAs.Equal(firstPool) && firstOnly(bundle[:n], rootPEM)) {
			t.Errorf("wps's CA bundle cut at byte %d of %d loaded in part", n, len(bundle))
		}
	}

	// The issue's case, through a reload: the certificate in use stays,
	// and the error says why.
	live := filepath.Join(dir, "live.pem")
	testkit.CopyFile(t, chainFile, live)
	s, err := NewTLSServer(live, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(chain[len(leaf)-1:], []byte("-----BEGIN")) + len(leaf) - 1
	os.WriteFile(live, chain[:at+7], 0o600)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "after its last PEM block") {
		t.Errorf("reload of a chain cut 7 bytes into the intermediate: %v", err)
	}
	if n := len(s.current.Load().Certificates[0].Certificate); n != 2 {
		t.Errorf("after the failed reload the chain has %d certificates", n)
	}
}

// The chain after the leaf must be the leaf's: each certificate signed by
// the next. A chain whose intermediate is another CA's (a renewal from a
// new intermediate with the old chain file) fails every client.
func TestTLSChainMustVerifyToTheLeafsIssuer(t *testing.T) {
	root := testkit.NewCA(t, "root CA")
	inter := root.Intermediate(t, "intermediate CA")
	wrong := root.Intermediate(t, "another intermediate")
	leafFile, keyFile := inter.Issue(t, "svr", "svr")
	if _, err := NewTLSServer(inter.ChainFile(t, leafFile), keyFile, ""); err != nil {
		t.Fatalf("a right chain: %v", err)
	}
	_, err := NewTLSServer(wrong.ChainFile(t, leafFile), keyFile, "")
	if err == nil || !strings.Contains(err.Error(), `certificate 2 ("another intermediate") did not sign certificate 1 ("svr")`) {
		t.Fatalf("a chain of another intermediate: %v", err)
	}
}

// Expired or not yet valid: refused (a server presenting it fails every
// client). Expiring within 7 days: loaded, with a warning to log.
func TestTLSValidity(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	now := time.Now()
	expired, k1 := ca.IssueValid(t, "old", "old", now.Add(-48*time.Hour), now.Add(-time.Hour))
	early, k2 := ca.IssueValid(t, "early", "early", now.Add(time.Hour), now.Add(48*time.Hour))
	soon, k3 := ca.IssueValid(t, "soon", "soon", now.Add(-time.Hour), now.Add(3*24*time.Hour))
	fine, k4 := ca.IssueValid(t, "fine", "fine", now.Add(-time.Hour), now.Add(30*24*time.Hour))
	if _, err := NewTLSServer(expired, k1, ""); err == nil || !strings.Contains(err.Error(), `certificate 1 ("old") expired on`) {
		t.Errorf("expired: %v", err)
	}
	if _, err := NewTLSServer(early, k2, ""); err == nil || !strings.Contains(err.Error(), `certificate 1 ("early") is not valid before`) {
		t.Errorf("not yet valid: %v", err)
	}
	s, err := NewTLSServer(soon, k3, "")
	if err != nil {
		t.Fatalf("expiring in 3 days: %v", err)
	}
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], `certificate 1 ("soon") expires on`) {
		t.Errorf("expiring in 3 days: warnings %q", w)
	}
	s, err = NewTLSServer(fine, k4, "")
	if err != nil || len(s.Warnings()) != 0 {
		t.Errorf("valid for 30 days: %v, warnings %q", err, s.Warnings())
	}
	// A reload to an expired certificate keeps the one in use.
	live, liveKey := filepath.Join(t.TempDir(), "live.crt"), filepath.Join(t.TempDir(), "live.key")
	testkit.CopyFile(t, fine, live)
	testkit.CopyFile(t, k4, liveKey)
	s, err = NewTLSServer(live, liveKey, "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.CopyFile(t, expired, live)
	testkit.CopyFile(t, k1, liveKey)
	if err := s.Reload(); err == nil {
		t.Error("reload to an expired certificate succeeded")
	}
	if cn := s.Leaf().Subject.CommonName; cn != "fine" {
		t.Errorf("after the refused reload: %q", cn)
	}
}

// A block cut short in the middle of a file, not at its end, is refused
// too: Go's PEM parsing skips a block it cannot decode and carries on at
// the next "-----BEGIN", so a CA bundle made by concatenating files, one
// of them cut short, loaded without that CA and said nothing (a chain
// is caught by its signature check, a bundle has none). Every
// "-----BEGIN" line must begin a block that parses.
func TestTLSLoadRefusesBlockCutInTheMiddle(t *testing.T) {
	cas := []*testkit.CA{testkit.NewCA(t, "first CA"), testkit.NewCA(t, "second CA"), testkit.NewCA(t, "third CA")}
	var pems [][]byte
	for _, ca := range cas {
		p, err := os.ReadFile(ca.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, p)
	}
	certFile, keyFile := cas[0].Issue(t, "svr", "svr")
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	// Cut the second CA at every length inside its body and END line.
	begin := bytes.Index(pems[1], []byte("\n")) + 1
	for n := begin; n < len(bytes.TrimSpace(pems[1])); n += 7 {
		data := slices.Concat(pems[0], pems[1][:n], []byte("\n"), pems[2])
		os.WriteFile(bundle, data, 0o600)
		if _, err := NewTLSServer(certFile, keyFile, bundle); err == nil {
			t.Fatalf("client CA bundle with its second CA cut at byte %d of %d loaded", n, len(pems[1]))
		}
		if _, err := ClientTLS(bundle, "", ""); err == nil {
			t.Fatalf("wps's CA bundle with its second CA cut at byte %d of %d loaded", n, len(pems[1]))
		}
	}
	// CRLF line ends and a byte order mark, as an editor on Windows
	// writes them, are still a whole file.
	crlf := bytes.ReplaceAll(slices.Concat(pems[0], pems[1], pems[2]), []byte("\n"), []byte("\r\n"))
	os.WriteFile(bundle, slices.Concat([]byte("\xef\xbb\xbf"), crlf), 0o600)
	all := x509.NewCertPool()
	all.AppendCertsFromPEM(slices.Concat(pems...))
	if cfg, err := ClientTLS(bundle, "", ""); err != nil || !cfg.RootCAs.Equal(all) {
		t.Errorf("CA bundle with a BOM and CRLF line ends: all three CAs loaded? %v", err)
	}
	// Behind a BOM, Go's PEM parsing does not see the first block: the
	// leaf of a certificate file.
	leaf, _ := os.ReadFile(certFile)
	bomLeaf := filepath.Join(dir, "leaf.pem")
	os.WriteFile(bomLeaf, slices.Concat([]byte("\xef\xbb\xbf"), leaf), 0o600)
	if s, err := NewTLSServer(bomLeaf, keyFile, ""); err != nil || s.Leaf().Subject.CommonName != "svr" {
		t.Errorf("certificate file with a BOM: %v", err)
	}
}
