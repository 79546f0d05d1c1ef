//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/internal/netlab"
)

// The attack section (issue 19): svr, with its default settings, under
// the attacks the issue measured, one figure each:
//
//   - slots: 64 attacking addresses (127.0.1.1 to 127.0.1.64) × 64
//     silent connections each, every one reconnected as soon as it is
//     dropped; meanwhile a real `tcplab wps 127.0.0.1 PORT w` once a
//     second, 10 times: how many were answered, and how long each took
//     (the wps process's whole life);
//   - rate per /64: 50 addresses of one IPv6 /64 × 40 requests each, on
//     the fault lab's link (root only): how many were answered, against
//     one address's 200;
//   - log lines under a flood: requests as fast as 8 clients can make
//     them for 10 s (plaintext, rate-limited after the burst), and
//     plaintext connections to a TLS svr for 10 s (each a failed
//     handshake): lines svr wrote per second, against requests per second;
//   - scrape latency: /metrics scraped 20 times on a fresh connection,
//     first alone, then with 100 keep-alive connections that asked once
//     and idle.
//
// -binary runs the section against another build (the one before the
// fix) for the "before" figures.
func init() {
	register(section{name: "attack", order: 63, run: benchAttack})
}

func benchAttack(ctx context.Context, env *benchEnv) (string, error) {
	raiseFileLimit(16384)
	load := loadAvg()
	var b strings.Builder
	b.WriteString("svr with its default settings, under attack (each part a fresh svr; times include starting the wps process):\n\n")
	b.WriteString("| attack | what a real client or operator sees |\n|---|---|\n")

	slots, err := attackSlots(ctx, env)
	if err != nil {
		return "", fmt.Errorf("slots: %w", err)
	}
	fmt.Fprintf(&b, "| 64 addresses × 64 silent connections, each reconnected when dropped | %s |\n", slots)

	rate, err := attackRatePer64(ctx, env)
	if err != nil {
		return "", fmt.Errorf("rate per /64: %w", err)
	}
	fmt.Fprintf(&b, "| 50 addresses of one IPv6 /64 × 40 requests (fault lab link) | %s |\n", rate)

	plain, err := attackLogFlood(ctx, env, false)
	if err != nil {
		return "", fmt.Errorf("log flood: %w", err)
	}
	fmt.Fprintf(&b, "| requests for 10 s from 8 clients (rate-limited after the burst) | %s |\n", plain)
	tlsFlood, err := attackLogFlood(ctx, env, true)
	if err != nil {
		return "", fmt.Errorf("TLS log flood: %w", err)
	}
	fmt.Fprintf(&b, "| plaintext connections to a TLS svr for 10 s (a failed handshake each) | %s |\n", tlsFlood)

	scrape, err := attackScrape(ctx, env)
	if err != nil {
		return "", fmt.Errorf("scrape: %w", err)
	}
	fmt.Fprintf(&b, "| 100 idle keep-alive connections to `--metrics` | %s |\n", scrape)
	b.WriteString("\nLoad average before the section: " + load + ".\n")
	return b.String(), nil
}

// startSVRBench starts "tcplab svr ARGS... PORT" on a free loopback port
// with its standard output and error counted, and waits until it is up.
func startSVRBench(ctx context.Context, env *benchEnv, out io.Writer, args ...string) (*exec.Cmd, string, error) {
	cmd, port, err := startOnFreePort(func(port string) *exec.Cmd {
		c := exec.CommandContext(ctx, env.tcplab, append(append([]string{"svr"}, args...), port)...)
		c.Stdout, c.Stderr = out, out
		return c
	}, false)
	if err != nil {
		return nil, "", err
	}
	return cmd, strconv.Itoa(port), nil
}

// metricsURL waits for svr's "metrics" log line in log and returns its URL.
func metricsURL(log *lineCounter) (string, error) {
	re := regexp.MustCompile(`url=(http://\S+)`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(log.text()); m != nil {
			return m[1], nil
		}
	}
	return "", fmt.Errorf("no metrics URL in svr's log: %q", log.text())
}

// scrapeValue reads one metric from svr's /metrics; -1 when absent.
func scrapeValue(url, name string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// attackSlots is the slots figure.
func attackSlots(ctx context.Context, env *benchEnv) (string, error) {
	const addrs, perAddr, tries = 64, 64, 10
	log := &lineCounter{keep: 1 << 20}
	cmd, port, err := startSVRBench(ctx, env, log, "--metrics", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer stopProcess(cmd, 5*time.Second)
	url, err := metricsURL(log)
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	// wps asks once, as a person would, and returns how long its whole
	// process took and what went wrong, if anything.
	wps := func() (time.Duration, string) {
		began := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(wctx, env.tcplab, "wps", "--timeout", "20s", "127.0.0.1", port, "w").CombinedOutput()
		if err == nil && strings.Contains(string(out), "load average") {
			return time.Since(began), ""
		}
		return time.Since(began), strings.TrimSpace(lastLineOf(strings.TrimSpace(string(out))))
	}
	// request asks once from this process: the request's own time,
	// without a process's start.
	request := func() (time.Duration, bool) {
		began := time.Now()
		c, err := net.DialTimeout("tcp", addr, 20*time.Second)
		if err != nil {
			return time.Since(began), false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "w")
		out, _ := io.ReadAll(c)
		return time.Since(began), strings.Contains(string(out), "load average")
	}
	var calm []time.Duration
	for range tries {
		d, _ := wps()
		calm = append(calm, d)
	}
	slices.Sort(calm)

	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var dialled atomic.Int64
	for a := 1; a <= addrs; a++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(a))}, Timeout: 3 * time.Second}
		for range perAddr {
			wg.Go(func() {
				buf := make([]byte, 512)
				for actx.Err() == nil {
					began := time.Now()
					c, err := d.DialContext(actx, "tcp", addr)
					if err == nil {
						dialled.Add(1)
						stopOnDone := context.AfterFunc(actx, func() { c.Close() })
						for {
							if _, err := c.Read(buf); err != nil {
								break // dropped, or refused and closed: reconnect
							}
						}
						stopOnDone()
						c.Close()
					}
					if time.Since(began) < 10*time.Millisecond {
						// Refused at once: pause a little, so the bench's
						// own loop does not take the CPU svr needs.
						select {
						case <-actx.Done():
						case <-time.After(10 * time.Millisecond):
						}
					}
				}
			})
		}
	}
	// Let the attack fill the slots: a silent connection reaches svr
	// only after deferred accept gives up on it, a second or more.
	time.Sleep(4 * time.Second)
	var times []time.Duration
	answered, within := 0, 0
	var fails []string
	open := []float64{}
	for range tries {
		open = append(open, scrapeValue(url, "tcplab_svr_open_connections"))
		took, fail := wps()
		times = append(times, took)
		if fail == "" {
			answered++
			if took <= time.Second {
				within++
			}
		} else {
			fails = append(fails, fail)
		}
		time.Sleep(time.Second) // the pause is the point: one real request a second
	}
	var direct []time.Duration
	served := 0
	for range 5 * tries {
		d, ok := request()
		direct = append(direct, d)
		if ok {
			served++
		}
		time.Sleep(100 * time.Millisecond) // the pause is the point: a client now and then
	}
	evicted := scrapeValue(url, "tcplab_svr_connections_evicted_total")
	stop()
	wg.Wait()
	slices.Sort(times)
	slices.Sort(direct)
	slices.Sort(open)
	s := fmt.Sprintf("%d of %d `wps ... w` answered, %d within 1 s (median %s, slowest %s; %s and %s with no attack); %d of %d requests made without starting a process answered (median %s, slowest %s); svr held %.0f–%.0f connections when asked; the attack dialled %s connections",
		answered, tries, within, roundDur(times[len(times)/2]), roundDur(times[len(times)-1]), roundDur(calm[len(calm)/2]), roundDur(calm[len(calm)-1]),
		served, len(direct), roundDur(direct[len(direct)/2]), roundDur(direct[len(direct)-1]),
		open[0], open[len(open)-1], commas(int(dialled.Load())))
	if evicted >= 0 {
		s += fmt.Sprintf(", svr closed %s of them to make room", commas(int(evicted)))
	}
	if len(fails) > 0 {
		s += fmt.Sprintf("; failures: %q", slices.Compact(fails))
	}
	return s, nil
}

// attackRatePer64 is the rate-per-/64 figure, on a lab link: svr in B,
// the clients in A at 2001:db8:1::1 to ::50, one /64.
func attackRatePer64(ctx context.Context, env *benchEnv) (string, error) {
	if err := netlab.Check(); err != nil {
		return "skipped: " + err.Error(), nil
	}
	link, err := netlab.New()
	if err != nil {
		return "", err
	}
	defer link.Close()
	const n, each = 50, 40
	var clients []net.IP
	for i := 1; i <= n; i++ {
		ip := net.ParseIP("2001:db8:1::" + strconv.FormatInt(int64(i), 16))
		clients = append(clients, ip)
		if out, err := exec.Command("ip", "-n", link.A.Name, "-6", "addr", "add", ip.String()+"/64", "dev", link.A.Dev, "nodad").CombinedOutput(); err != nil {
			return "", fmt.Errorf("ip addr add: %v: %s", err, out)
		}
	}
	if out, err := exec.Command("ip", "-n", link.B.Name, "-6", "addr", "add", "2001:db8:1::ffff/64", "dev", link.B.Dev, "nodad").CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip addr add: %v: %s", err, out)
	}
	svr := link.B.Command(ctx, env.tcplab, "svr", "--native", "2000")
	svr.Stdout, svr.Stderr = io.Discard, io.Discard
	if err := svr.Start(); err != nil {
		return "", err
	}
	defer stopProcess(svr, 5*time.Second)
	target := "[2001:db8:1::ffff]:2000"
	// ask sends one "w" from each of from (at once, each its own
	// connection, dialled inside A) and counts the answers by kind.
	ask := func(from []net.IP) (answered, limited int, err error) {
		conns := make([]net.Conn, len(from))
		err = link.A.Do(func() error {
			for i, ip := range from {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp6", target)
				if err != nil {
					return err
				}
				conns[i] = c
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				io.WriteString(c, "w")
				b, _ := io.ReadAll(c)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case strings.Contains(string(b), "load average"):
					answered++
				case strings.HasPrefix(string(b), "rate limit exceeded"):
					limited++
				}
			})
		}
		wg.Wait()
		return answered, limited, nil
	}
	// Wait until svr is up in B.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, _, err := ask(clients[:1]); err == nil {
			break
		} else if time.Now().After(deadline) {
			return "", fmt.Errorf("svr in the lab never answered: %w", err)
		}
	}
	// That request spent one of the /64's tokens; a fresh svr for the
	// figures.
	stopProcess(svr, 5*time.Second)
	svr = link.B.Command(ctx, env.tcplab, "svr", "--native", "2000")
	svr.Stdout, svr.Stderr = io.Discard, io.Discard
	if err := svr.Start(); err != nil {
		return "", err
	}
	defer stopProcess(svr, 5*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var up bool
		link.A.Do(func() error {
			c, err := net.DialTimeout("tcp6", target, time.Second)
			if err == nil {
				c.Close() // connect only: nothing sent, nothing spent
				up = true
			}
			return nil
		})
		if up {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("svr in the lab never listened")
		}
	}
	began := time.Now()
	answered, limited := 0, 0
	for range each {
		a, l, err := ask(clients)
		if err != nil {
			return "", err
		}
		answered += a
		limited += l
	}
	took := time.Since(began)
	// One address alone, for comparison, after the /64's tokens are
	// spent: a fresh svr again would be fairer, so the other /64 of the
	// comparison is 2001:db8:1::/64 itself on a new server.
	stopProcess(svr, 5*time.Second)
	svr = link.B.Command(ctx, env.tcplab, "svr", "--native", "2000")
	svr.Stdout, svr.Stderr = io.Discard, io.Discard
	if err := svr.Start(); err != nil {
		return "", err
	}
	defer stopProcess(svr, 5*time.Second)
	time.Sleep(500 * time.Millisecond) // svr starting in B: its listen takes a moment
	one, oneBegan := 0, time.Now()
	single := slices.Repeat(clients[:1], 50)
	for range 4 {
		a, _, err := ask(single)
		if err != nil {
			return "", err
		}
		one += a
	}
	oneTook := time.Since(oneBegan)
	return fmt.Sprintf("%s of %s answered in %s, %s told `rate limit exceeded`; one address alone: %d of 200 answered in %s (burst 40, 20/s)",
		commas(answered), commas(n*each), roundDur(took), commas(limited), one, roundDur(oneTook)), nil
}

// attackLogFlood is the log-lines figure: requests (or, withTLS,
// plaintext connections to a TLS svr) as fast as 8 clients make them for
// 10 s, and the lines svr writes meanwhile and at its stop.
func attackLogFlood(ctx context.Context, env *benchEnv, withTLS bool) (string, error) {
	const clients, window = 8, 10 * time.Second
	out := &lineCounter{keep: 1 << 16}
	args := []string{"--native"}
	if withTLS {
		cert, key, err := selfSigned(env.tmp)
		if err != nil {
			return "", err
		}
		args = append(args, "--tls-cert", cert, "--tls-key", key)
	}
	cmd, port, err := startSVRBench(ctx, env, out, args...)
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	time.Sleep(300 * time.Millisecond) // svr's start-up lines, before the count
	before, beforeBytes := out.count()
	var requests atomic.Int64
	var firstErr atomic.Value
	fctx, stop := context.WithTimeout(ctx, window)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for fctx.Err() == nil {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "w")
				io.Copy(io.Discard, c)
				c.Close()
				requests.Add(1)
			}
		})
	}
	wg.Wait()
	stop()
	during, duringBytes := out.count()
	stopProcess(cmd, 10*time.Second)
	after, _ := out.count()
	reqs := requests.Load()
	if reqs == 0 {
		// A figure of no requests measures nothing: say why instead.
		return "", fmt.Errorf("no request reached svr in %s (first error: %v); svr said: %q", window, firstErr.Load(), lastLineOf(out.text()))
	}
	return fmt.Sprintf("%s connections (%s/s): svr wrote %s lines (%s bytes) during the 10 s, %s lines/s, and %d more at its stop",
		commas(int(reqs)), commas(int(float64(reqs)/window.Seconds())), commas(during-before), commas(duringBytes-beforeBytes),
		english.Sprintf("%.1f", float64(during-before)/window.Seconds()), after-during), nil
}

// attackScrape is the scrape-latency figure.
func attackScrape(ctx context.Context, env *benchEnv) (string, error) {
	log := &lineCounter{keep: 1 << 20}
	cmd, _, err := startSVRBench(ctx, env, log, "--metrics", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer stopProcess(cmd, 5*time.Second)
	url, err := metricsURL(log)
	if err != nil {
		return "", err
	}
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")
	scrapes := func() (times []time.Duration, failed int) {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for range 20 {
			began := time.Now()
			resp, err := client.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err != nil {
				failed++
				continue
			}
			times = append(times, time.Since(began))
		}
		slices.Sort(times)
		return times, failed
	}
	describe := func(times []time.Duration, failed int) string {
		if len(times) == 0 {
			return fmt.Sprintf("%d of 20 failed (10 s timeout)", failed)
		}
		s := fmt.Sprintf("median %s, slowest %s", roundDur(times[len(times)/2]), roundDur(times[len(times)-1]))
		if failed > 0 {
			s += fmt.Sprintf(", %d of 20 failed (10 s timeout)", failed)
		}
		return s
	}
	alone := describe(scrapes())
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	kept := 0
	for range 100 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			return "", err
		}
		idle = append(idle, c)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			kept++
		}
		c.SetDeadline(time.Time{})
	}
	crowded := describe(scrapes())
	return fmt.Sprintf("scrapes alone: %s; with the 100 (%d of them answered their one request): %s", alone, kept, crowded), nil
}

// lineCounter counts the lines and bytes written to it, keeping the first
// keep bytes of text.
type lineCounter struct {
	mu    sync.Mutex
	lines int
	bytes int
	keep  int
	buf   []byte
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines += strings.Count(string(p), "\n")
	l.bytes += len(p)
	if room := l.keep - len(l.buf); room > 0 {
		l.buf = append(l.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *lineCounter) count() (lines, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines, l.bytes
}

func (l *lineCounter) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// selfSigned writes a self-signed P-256 certificate for localhost and its
// key to dir.
func selfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "attack.crt"), filepath.Join(dir, "attack.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}
