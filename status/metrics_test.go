package status

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// The metrics pass client_golang's linter (promlint: names, units,
// counters' _total, help texts), both as gathered and as --metrics serves
// them over HTTP, with every series present.
func TestMetricsLint(t *testing.T) {
	m := NewMetrics()
	for _, r := range []string{resultOK, resultUnknown, resultDenied, resultLimited, resultError, resultNoName, resultWriteTO, resultNoTLS} {
		m.observe("w", r, 0)
	}
	m.ObserveRun("w", false)
	m.ObserveRun("w", true)
	m.open.Inc()
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, "tcplab_svr_requests_total") {
		t.Fatalf("no requests metric in %q", body[:min(len(body), 300)])
	}
	served, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(problems, served...) {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// Every limit of the metrics server is set: a zero would mean no limit, and
// with IdleTimeout and ReadTimeout both zero an idle keep-alive connection
// is held for ever.
func TestSVRMetricsServerHasEveryLimit(t *testing.T) {
	s := newMetricsServer(http.NotFoundHandler())
	limits := map[string]time.Duration{
		"ReadHeaderTimeout": s.ReadHeaderTimeout,
		"ReadTimeout":       s.ReadTimeout,
		"WriteTimeout":      s.WriteTimeout,
		"IdleTimeout":       s.IdleTimeout,
	}
	for name, d := range limits {
		if d <= 0 {
			t.Errorf("%s = %v", name, d)
		}
	}
	if s.MaxHeaderBytes <= 0 {
		t.Errorf("MaxHeaderBytes = %d", s.MaxHeaderBytes)
	}
}

// Idle keep-alive connections cannot hold the metrics port: 16 of them
// made every scrape wait for 30 s (the idle timeout) in the listen
// backlog, so 5 of 5 scrapes over a minute timed out. Each of 100
// connections here asks once and then idles, as a keep-alive client
// does; then a scraper must be answered at once. Every wait is bounded
// by a deadline: before the fix the 17th connection's answer never came.
func TestMetricsScrapeNotHeldByIdleKeepAlives(t *testing.T) {
	m := NewMetrics()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := m.Serve(ln)
	defer stop()
	addr := ln.Addr().String()
	for i := range 100 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("keep-alive connection %d: no answer: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape with 100 idle keep-alive connections: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "tcplab_svr_open_connections") {
		t.Fatalf("scrape: %s", body)
	}
}

// process_network_*_bytes_total would count the whole network
// namespace's traffic (/proc/PID/net/dev is the namespace's), not svr's:
// they are not served.
func TestMetricsHaveNoNamespaceWideNetworkCounters(t *testing.T) {
	rec := httptest.NewRecorder()
	NewMetrics().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body := rec.Body.String(); strings.Contains(body, "process_network_") || !strings.Contains(body, "process_open_fds") {
		t.Fatalf("metrics: %s", body)
	}
}

// A request with a body that comes slowly cannot hold the metrics port:
// net/http reads up to 256 KiB of a body the handler left unread, for
// up to ReadTimeout, with the connection active (never closed for a
// newcomer), so 16 connections each sending a POST whose body never
// comes refused every scrape for 10 s at a time, over and over. The 16
// here are active (the hook says so) before the scrape.
func TestMetricsScrapeNotHeldBySlowBodies(t *testing.T) {
	m := NewMetrics()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	active := make(chan net.Conn, 2*MaxMetricsConns)
	stop := m.serve(ln, func(c net.Conn, s http.ConnState) {
		if s == http.StateActive {
			active <- c
		}
	})
	defer stop()
	addr := ln.Addr().String()
	for i := range MaxMetricsConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The headers whole, then one byte of a body of 1,000.
		io.WriteString(c, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
		select {
		case <-active:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d never became active", i+1)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape with %d slow request bodies: %v", MaxMetricsConns, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "tcplab_svr_open_connections") {
		t.Fatalf("scrape: %s", body)
	}
}
