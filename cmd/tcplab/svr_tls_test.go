package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/status"
)

// svrTLSFiles is a server CA with svr's certificate, a client CA with a
// client's certificate, and a stranger's certificate from a third CA.
type svrTLSFiles struct {
	serverCA, clientCA, otherCA *testkit.CA
	svrCert, svrKey             string
	clientCert, clientKey       string
	strangerCert, strangerKey   string
}

func makeTLSFiles(t *testing.T) svrTLSFiles {
	f := svrTLSFiles{
		serverCA: testkit.NewCA(t, "tcplab server CA"),
		clientCA: testkit.NewCA(t, "tcplab client CA"),
		otherCA:  testkit.NewCA(t, "someone else's CA"),
	}
	f.svrCert, f.svrKey = f.serverCA.Issue(t, "svr", "svr")
	f.clientCert, f.clientKey = f.clientCA.Issue(t, "alice", "alice")
	f.strangerCert, f.strangerKey = f.otherCA.Issue(t, "mallory", "mallory")
	return f
}

// svr with mutual TLS, in-process, asked by wps in-process: one host and
// the fleet view. A client without a certificate, with one from another
// CA, or speaking plaintext is not served.
func TestSVRMutualTLSInProcess(t *testing.T) {
	f := makeTLSFiles(t)
	port, log := inProcessServer(t, "svr", "--tls-cert", f.svrCert, "--tls-key", f.svrKey, "--tls-client-ca", f.clientCA.CertFile, "--commands", "w,ps,json", "0")
	if !strings.Contains(log.String(), "tls=mutual") {
		t.Fatalf("start-up log does not say mutual TLS: %s", log.String())
	}
	withCert := []string{"--tls-ca", f.serverCA.CertFile, "--tls-cert", f.clientCert, "--tls-key", f.clientKey}

	code, out, errOut := runCmd(t, "", append(append([]string{"wps"}, withCert...), "localhost", port, "w")...)
	if code != 0 || !strings.Contains(out, "load average:") {
		t.Fatalf("wps with a client certificate: exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "", append(append([]string{"wps"}, withCert...), "--hosts", "127.0.0.1:"+port+",localhost:"+port)...)
	if code != 0 || strings.Count(out, ":"+port+" ") != 2 || strings.Contains(out, "error") {
		t.Fatalf("wps --hosts over mutual TLS: exit %d, %q, %q", code, out, errOut)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no client certificate", []string{"--tls-ca", f.serverCA.CertFile}, "certificate required"},
		{"certificate from another CA", []string{"--tls-ca", f.serverCA.CertFile, "--tls-cert", f.strangerCert, "--tls-key", f.strangerKey}, "tls:"},
		{"server from another CA", []string{"--tls-ca", f.otherCA.CertFile, "--tls-cert", f.clientCert, "--tls-key", f.clientKey}, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", append(append([]string{"wps"}, tc.args...), "localhost", port, "w")...)
			if code != 1 || strings.Contains(out, "load average") || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and one line with %q", code, out, errOut, tc.want)
			}
		})
	}
	// A plaintext client gets one plaintext line saying why (and wps
	// fails: TestPlaintextWPSAtTLSServerFails).
	code, out, _ = runCmd(t, "", "wps", "localhost", port, "w")
	if code != 1 || out != status.NotTLSAnswer {
		t.Fatalf("plaintext wps against TLS svr: exit %d, %q", code, out)
	}
	// Each refusal is logged once the server's side of the handshake has
	// failed too, which may come after the client has given up.
	if !testkit.WaitWritten(10*time.Second, nil, func(out string) bool { return strings.Count(out, "client refused") >= 4 }, log) {
		t.Fatalf("%d refusals logged, want 4: %s", strings.Count(log.String(), "client refused"), log.String())
	}
}

// Flags that cannot work together are usage errors naming the flag; files
// that cannot be used are one line naming the file.
func TestTLSFlagErrors(t *testing.T) {
	f := makeTLSFiles(t)
	missing := t.TempDir() + "/missing.pem"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"svr", "--tls-cert", f.svrCert, "0"}, 2, "--tls-cert needs --tls-key"},
		{[]string{"svr", "--tls-key", f.svrKey, "0"}, 2, "--tls-key needs --tls-cert"},
		{[]string{"svr", "--tls-client-ca", f.clientCA.CertFile, "0"}, 2, "--tls-client-ca needs --tls-cert"},
		{[]string{"wps", "--tls-cert", f.clientCert, "localhost", "1", "w"}, 2, "--tls-cert needs --tls-key"},
		{[]string{"wps", "--tls-key", f.clientKey, "localhost", "1", "w"}, 2, "--tls-key needs --tls-cert"},
		{[]string{"wps", "--tls-cert", f.clientCert, "--tls-key", f.clientKey, "localhost", "1", "w"}, 2, "--tls-cert needs --tls-ca"},
		{[]string{"wps", "--tls-ca", missing, "localhost", "99999", "w"}, 2, "invalid port"},
		{[]string{"svr", "--tls-cert", missing, "--tls-key", f.svrKey, "0"}, 1, "TLS certificate: open " + missing + ": no such file or directory"},
		{[]string{"svr", "--tls-cert", f.svrCert, "--tls-key", f.clientKey, "0"}, 1, "private key does not match public key"},
		{[]string{"svr", "--tls-cert", f.svrCert, "--tls-key", f.svrKey, "--tls-client-ca", f.svrKey, "0"}, 1, "TLS CA " + f.svrKey + ": no PEM certificate in it"},
		{[]string{"wps", "--tls-ca", missing, "localhost", "1", "w"}, 1, "TLS CA: open " + missing},
		{[]string{"wps", "--tls-ca", f.serverCA.CertFile, "--tls-cert", f.clientCert, "--tls-key", f.strangerKey, "--hosts", "localhost:1"}, 1, "does not match"},
	} {
		code, _, errOut := runCmd(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, %q; want %d and one line with %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

// openssl s_client, Debian's TLS client, as a peer of svr with mutual TLS
// through the built binary.
func TestSVRTLSWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed (scripts/test.sh installs it)")
	}
	f := makeTLSFiles(t)
	_, port := startSVR(t, "--tls-cert", f.svrCert, "--tls-key", f.svrKey, "--tls-client-ca", f.clientCA.CertFile)
	sClient := func(extra ...string) (string, string, error) {
		args := append([]string{"s_client", "-connect", "127.0.0.1:" + port, "-CAfile", f.serverCA.CertFile, "-verify_return_error", "-quiet"}, extra...)
		cmd := exec.Command(openssl, args...)
		cmd.Stdin = strings.NewReader("w")
		var errOut testkit.SafeBuffer
		cmd.Stderr = &errOut
		out, err := runBounded(t, cmd)
		return out, errOut.String(), err
	}
	out, errOut, err := sClient("-cert", f.clientCert, "-key", f.clientKey)
	if err != nil || !strings.Contains(out, "load average:") {
		t.Fatalf("s_client with a client certificate: %v, %q, %q", err, out, errOut)
	}
	for _, tc := range []struct {
		extra []string
		alert string
	}{
		{nil, "certificate required"},
		{[]string{"-cert", f.strangerCert, "-key", f.strangerKey}, "unknown ca"},
	} {
		out, errOut, err := sClient(tc.extra...)
		if err == nil || out != "" || !strings.Contains(errOut, tc.alert) {
			t.Fatalf("s_client %q: %v, stdout %q, stderr %q; want a failure and the alert %q", tc.extra, err, out, errOut, tc.alert)
		}
	}
}

// SIGHUP reloads the certificate in the running binary: a connection
// opened before keeps working, later ones get the new certificate, and a
// broken renewal keeps the certificate in use and logs an ERROR.
func TestSVRTLSReloadOnSIGHUP(t *testing.T) {
	f := makeTLSFiles(t)
	dir := t.TempDir()
	cert, key := dir+"/svr.crt", dir+"/svr.key"
	testkit.CopyFile(t, f.svrCert, cert)
	testkit.CopyFile(t, f.svrKey, key)
	srv, port := startSVR(t, "--tls-cert", cert, "--tls-key", key, "--read-timeout", "60s")
	client := &tls.Config{RootCAs: f.serverCA.Pool(), ServerName: "localhost"}
	dial := func() *tls.Conn {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+port, client)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	subject := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].Subject.CommonName }
	ask := func(c *tls.Conn) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write([]byte("w")); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(b)
	}

	held := dial() // handshaken, request not sent yet
	if subject(held) != "svr" {
		t.Fatalf("first certificate %q", subject(held))
	}
	renewedCert, renewedKey := f.serverCA.Issue(t, "svr renewed", "renewed")
	testkit.CopyFile(t, renewedCert, cert)
	testkit.CopyFile(t, renewedKey, key)
	srv.Cmd.Process.Signal(syscall.SIGHUP)
	srv.WaitFor(t, "TLS certificate reloaded", 10*time.Second)
	renewed := dial()
	if subject(renewed) != "svr renewed" {
		t.Fatalf("after SIGHUP: %q", subject(renewed))
	}
	// Never asked: left open, svr would wait for its request through the
	// whole --grace after SIGTERM (10 s of this test).
	renewed.Close()
	if out := ask(held); !strings.Contains(out, "load average:") {
		t.Fatalf("the connection held across the reload: %q", out)
	}

	os.WriteFile(key, []byte("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n"), 0o600)
	srv.Cmd.Process.Signal(syscall.SIGHUP)
	srv.WaitFor(t, "level=ERROR msg=\"SIGHUP: TLS reload failed; keeping the certificate in use\"", 10*time.Second)
	c := dial()
	if subject(c) != "svr renewed" {
		t.Fatalf("after a failed reload: %q", subject(c))
	}
	if out := ask(c); !strings.Contains(out, "load average:") {
		t.Fatalf("after a failed reload: %q", out)
	}
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.Wait(t, 20*time.Second); code != exitTerminated {
		t.Fatalf("exit %d, want %d: %s", code, exitTerminated, srv.Stderr.String())
	}
}

// The rules that end a request hold over TLS: a newline, an allowed name,
// the client's half-close (its close_notify), a quiet gap. Each answer ends
// with close_notify and then the TCP end of file.
func TestSVRTLSEndOfRequest(t *testing.T) {
	f := makeTLSFiles(t)
	port, _ := inProcessServer(t, "svr", "--tls-cert", f.svrCert, "--tls-key", f.svrKey, "--rate", "0", "0")
	cfg := &tls.Config{RootCAs: f.serverCA.Pool(), ServerName: "localhost"}
	for _, tc := range []struct {
		name, send string
		halfClose  bool
		want       string
	}{
		{"newline", "ps\n", false, "USER"},
		{"allowed name", "w", false, "load average:"},
		{"half-close", "xy", true, "unknown command \"xy\""},
		{"quiet gap", "zz", false, "unknown command \"zz\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(20 * time.Second))
			c := tls.Client(raw, cfg)
			if _, err := c.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			if tc.halfClose {
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := io.ReadAll(c)
			if err != nil || !strings.Contains(string(got), tc.want) {
				t.Fatalf("answer %q, %v; want %q", got, err, tc.want)
			}
			if n, err := raw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("TCP after the answer: %d, %v; want end of file", n, err)
			}
		})
	}
}

// Handshakes are rate limited per address before any is made: a client a
// little over --rate still reads svr's refusal, a flood is closed before
// the handshake (each costs the server a signature).
func TestSVRTLSHandshakeRateLimit(t *testing.T) {
	f := makeTLSFiles(t)
	// One request per 10 s, burst 1: two handshakes per 10 s, burst 2.
	port, log := inProcessServer(t, "svr", "--tls-cert", f.svrCert, "--tls-key", f.svrKey, "--rate", "0.1", "--burst", "1", "0")
	cfg := &tls.Config{RootCAs: f.serverCA.Pool(), ServerName: "localhost"}
	ask := func() (string, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+port, cfg)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("w"))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	if out, err := ask(); err != nil || !strings.Contains(out, "load average:") {
		t.Fatalf("first request: %q, %v", out, err)
	}
	if out, err := ask(); err != nil || out != "rate limit exceeded; try again later\n" {
		t.Fatalf("second request: %q, %v; want svr's refusal over TLS", out, err)
	}
	if out, err := ask(); err == nil {
		t.Fatalf("third request was handshaken: %q", out)
	}
	// The log goes out through the server's output queue, which may
	// write it just after the client saw the close: wait for it.
	if !testkit.WaitWritten(10*time.Second, nil, func(out string) bool { return strings.Contains(out, `err="over the handshake rate limit"`) }, log) {
		t.Fatalf("no handshake refusal logged: %s", log.String())
	}
}

// Without TLS a SIGHUP (systemctl reload) is logged, not fatal: svr goes
// on serving.
func TestSVRSurvivesSIGHUPWithoutTLS(t *testing.T) {
	srv, port := startSVR(t)
	srv.Cmd.Process.Signal(syscall.SIGHUP)
	srv.WaitFor(t, "SIGHUP: nothing to reload", 10*time.Second)
	if code, out, errOut := wpsRun(t, "127.0.0.1", port, "w"); code != 0 || !strings.Contains(out, "load average:") {
		t.Fatalf("wps after SIGHUP: exit %d, %q, %q", code, out, errOut)
	}
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.Wait(t, 20*time.Second); code != exitTerminated {
		t.Fatalf("exit %d, want %d: %s", code, exitTerminated, srv.Stderr.String())
	}
}

// A SIGHUP that arrives while svr is still starting (systemctl reload, or
// a renewal hook, racing the start) neither kills it nor is lost: svr
// serves with the files it then loads. To hold svr inside its start-up
// deterministically, its certificate is a FIFO: opening the FIFO for
// writing returns only once svr has opened it to read the certificate.
func TestSVRSurvivesSIGHUPWhileStarting(t *testing.T) {
	f := makeTLSFiles(t)
	dir := t.TempDir()
	fifo, key := dir+"/svr.crt", dir+"/svr.key"
	testkit.CopyFile(t, f.svrKey, key)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	pem, err := os.ReadFile(f.svrCert)
	if err != nil {
		t.Fatal(err)
	}
	p := testkit.Start(t, nil, testkit.Binary(t), "svr", "--tls-cert", fifo, "--tls-key", key, "0")
	w := openFIFOWriter(t, p, fifo)
	p.Cmd.Process.Signal(syscall.SIGHUP) // svr is blocked reading the certificate
	waitSignalTaken(t, p.Cmd.Process.Pid, syscall.SIGHUP)
	w.Write(pem)
	w.Close()
	start := time.Now()
	for !strings.Contains(p.Stderr.String(), "listening") {
		select {
		case <-p.Done():
			t.Fatalf("svr did not survive a SIGHUP while starting: %v; stderr %q", p.Cmd.ProcessState, p.Stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("svr not listening: %q", p.Stderr.String())
		}
	}
	// The early SIGHUP is not lost: once svr runs it reloads, reading the
	// FIFO again, where a renewed certificate now comes (its key is read
	// after it).
	renewedCert, renewedKey := f.serverCA.Issue(t, "svr renewed", "renewed")
	w = openFIFOWriter(t, p, fifo) // returns once svr reloads
	testkit.CopyFile(t, renewedKey, key)
	pem, err = os.ReadFile(renewedCert)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pem)
	w.Close()
	p.WaitFor(t, `TLS certificate reloaded" subject="CN=svr renewed"`, 20*time.Second)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 20*time.Second); code != exitTerminated {
		t.Fatalf("exit %d, want %d: %s", code, exitTerminated, p.Stderr.String())
	}
}

// waitSignalTaken waits until sig, sent to process pid, is no longer
// pending there: the process has taken it (and its handler has run, or the
// process is dying of it).
func waitSignalTaken(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	bit := uint64(1) << (sig - 1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return // gone
		}
		pending := false
		for _, line := range strings.Split(string(st), "\n") {
			if f := strings.Fields(line); len(f) == 2 && (f[0] == "SigPnd:" || f[0] == "ShdPnd:") {
				v, _ := strconv.ParseUint(f[1], 16, 64)
				pending = pending || v&bit != 0
			}
		}
		if !pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("signal %v still pending in process %d", sig, pid)
		}
		time.Sleep(time.Millisecond) // polling: another process's pending signals give no event
	}
}

// openFIFOWriter opens fifo for writing, which returns once process p has
// opened it to read. If p exits first or takes too long, the open is
// released and the test fails.
func openFIFOWriter(t *testing.T, p *testkit.Proc, fifo string) *os.File {
	t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		w, _ := os.OpenFile(fifo, os.O_WRONLY, 0)
		opened <- w
	}()
	release := func() { // a reader of our own lets the open return
		if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer r.Close()
		}
		if w := <-opened; w != nil {
			w.Close()
		}
	}
	select {
	case w := <-opened:
		if w == nil {
			t.Fatalf("open %s failed", fifo)
		}
		return w
	case <-p.Done():
		release()
		t.Fatalf("exited before reading %s: %v; stderr %q", fifo, p.Cmd.ProcessState, p.Stderr.String())
	case <-time.After(20 * time.Second):
		release()
		t.Fatalf("did not read %s; stderr %q", fifo, p.Stderr.String())
	}
	return nil
}

// --help of svr and wps shows how TLS is typed, and svr's says what a
// SIGHUP does, so a newcomer need not find the README first.
func TestTLSInHelp(t *testing.T) {
	for _, c := range []struct{ cmd, want string }{
		{"svr", "tcplab svr --tls-cert svr.crt --tls-key svr.key"},
		{"svr", "--tls-client-ca"},
		{"svr", "SIGHUP"},
		{"wps", "tcplab wps --tls-ca ca.crt"},
		{"wps", "--tls-cert alice.crt --tls-key alice.key"},
	} {
		code, out, _ := runCmd(t, "", c.cmd, "--help")
		ex := out[strings.Index(out, "Examples:")+1:]
		if c.want == "SIGHUP" {
			ex = out[:strings.Index(out, "Flags:")] // the description, not a flag's line
		}
		if code != 0 || !strings.Contains(ex, c.want) {
			t.Errorf("%s --help: no %q where expected:\n%s", c.cmd, c.want, out)
		}
	}
}

// A plaintext wps asking a TLS svr prints the server's one line and then
// fails, exit 1, saying what to add: the line alone, with exit 0, read
// as an answer to a script checking wps's status.
func TestPlaintextWPSAtTLSServerFails(t *testing.T) {
	f := makeTLSFiles(t)
	port, _ := inProcessServer(t, "svr", "--tls-cert", f.svrCert, "--tls-key", f.svrKey, "0")
	code, out, errOut := runCmd(t, "", "wps", "127.0.0.1", port, "w")
	if code != 1 || out != status.NotTLSAnswer || !strings.Contains(errOut, "127.0.0.1:"+port+" speaks TLS only: add --tls-ca") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("wps: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "", "wps", "--json", "127.0.0.1", port, "w")
	if code != 1 || !strings.Contains(out, `"error": "127.0.0.1:`+port+` speaks TLS only: add --tls-ca`) {
		t.Errorf("wps --json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A renewal that is expired or not yet valid is refused with an ERROR
// and the certificate in use kept (before, an expired renewal loaded and
// was logged INFO); one that expires within 7 days loads with a WARN, at
// start and at a reload.
func TestSVRReloadRefusesExpiredAndWarnsOfExpiring(t *testing.T) {
	ca := testkit.NewCA(t, "tcplab server CA")
	now := time.Now()
	soonCert, soonKey := ca.IssueValid(t, "soon", "soon", now.Add(-time.Hour), now.Add(2*24*time.Hour))
	oldCert, oldKey := ca.IssueValid(t, "old", "old", now.Add(-48*time.Hour), now.Add(-time.Minute))
	dir := t.TempDir()
	certFile, keyFile := dir+"/svr.crt", dir+"/svr.key"
	testkit.CopyFile(t, soonCert, certFile)
	testkit.CopyFile(t, soonKey, keyFile)

	var log testkit.SafeBuffer
	p := startInProcess(t, &log, "svr", "--log-format", "json", "--tls-cert", certFile, "--tls-key", keyFile, "0")
	lines := func() string { return p.Stderr.String() }
	if !strings.Contains(lines(), `"level":"WARN","msg":"TLS certificate expires soon"`) || !strings.Contains(lines(), `certificate 1 (\"soon\") expires on`) {
		t.Fatalf("no WARN at start for a certificate that expires in 2 days:\n%s", lines())
	}
	testkit.CopyFile(t, oldCert, certFile)
	testkit.CopyFile(t, oldKey, keyFile)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if !testkit.WaitWritten(eventWait, p.exited, func(s string) bool { return strings.Contains(s, "SIGHUP: TLS reload failed") }, p.Stderr) {
		t.Fatalf("no reload logged:\n%s", lines())
	}
	if !strings.Contains(lines(), `"level":"ERROR","msg":"SIGHUP: TLS reload failed; keeping the certificate in use"`) || !strings.Contains(lines(), `certificate 1 (\"old\") expired on`) ||
		strings.Contains(lines(), "TLS certificate reloaded") {
		t.Fatalf("an expired renewal was not refused with an ERROR:\n%s", lines())
	}
}
