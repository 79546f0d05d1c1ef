package status

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// Metrics are the server's Prometheus metrics: requests by command and
// result, request latency, open connections and command runs (executed or
// shared). Label values are only allow-list names and the Result constants,
// so a client cannot create new series.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
	open     prometheus.Gauge
	runs     *prometheus.CounterVec
}

// NewMetrics makes the metrics in a registry of their own (with the Go
// runtime and process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcplab_svr_requests_total", Help: "Requests by command and result.",
		}, []string{"command", "result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tcplab_svr_request_duration_seconds", Help: "Time from accept to the answer sent.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tcplab_svr_open_connections", Help: "Connections being served.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcplab_svr_command_runs_total", Help: "Command outputs produced (kind=run) or shared with a concurrent or fresh run (kind=coalesced).",
		}, []string{"command", "kind"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.open, m.runs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format, for a caller
// that serves them on a mux of its own (Serve uses it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// MaxMetricsConns bounds the connections Serve keeps open at once; further
// ones wait in the listen backlog. A scraper needs one; the cap keeps
// anyone else who reaches the port from holding descriptors svr's clients
// need.
const MaxMetricsConns = 16

// Serve serves the metrics at /metrics on ln, in the background, until
// the returned stop is called, which closes ln and every connection.
func (m *Metrics) Serve(ln net.Listener) (stop func()) {
	srv := newMetricsServer(m.Handler())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(netutil.LimitListener(ln, MaxMetricsConns))
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// newMetricsServer serves h at /metrics with every limit net/http has set:
// a scraper or anyone else who reaches the port gets 5 s to send its
// headers, 10 s for the request and the answer, and 30 s of keep-alive
// between requests. Without IdleTimeout (ReadTimeout is the fallback, and
// it too was zero) an idle keep-alive connection was held for ever, so
// enough of them would spend the descriptors svr's clients need.
func newMetricsServer(h http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
}

func (m *Metrics) observe(command, result string, d time.Duration) {
	m.requests.WithLabelValues(command, result).Inc()
	m.latency.Observe(d.Seconds())
}

// ObserveRun counts one command output, shared or not; set it as a
// Runner's OnRun.
func (m *Metrics) ObserveRun(command string, shared bool) {
	kind := "run"
	if shared {
		kind = "coalesced"
	}
	m.runs.WithLabelValues(command, kind).Inc()
}
