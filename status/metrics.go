package status

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
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
//
// The process collector's process_network_receive_bytes_total and
// process_network_transmit_bytes_total are left out: they read
// /proc/PID/net/dev, which counts the traffic of the process's whole
// network namespace (every program on the host, without a namespace of
// svr's own), not svr's.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := m.reg.Gather()
		return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
			return strings.HasPrefix(mf.GetName(), "process_network_")
		}), err
	}), promhttp.HandlerOpts{})
}

// MaxMetricsConns bounds the connections Serve keeps open at once. A
// scraper needs one; the cap keeps anyone else who reaches the port from
// holding descriptors svr's clients need.
const MaxMetricsConns = 16

// Serve serves the metrics at /metrics on ln, in the background, until
// the returned stop is called, which closes ln and every connection.
//
// At MaxMetricsConns connections, a new one makes room by closing the
// connection that has waited longest for a request (idle between
// keep-alive requests, or connected and silent), as svr's own clients
// make room (internal/server); connections in the middle of a request
// are never closed for a newcomer, and with no connection to close the
// newcomer is. Before, over the cap new connections waited in the listen
// backlog, and 16 idle keep-alive connections made every scrape wait for
// the idle timeout.
func (m *Metrics) Serve(ln net.Listener) (stop func()) {
	return m.serve(ln, nil)
}

// serve is Serve; hook, if not nil, is told of each connection's new
// state once the cap has taken it in (for tests).
func (m *Metrics) serve(ln net.Listener, hook func(net.Conn, http.ConnState)) (stop func()) {
	srv := newMetricsServer(m.Handler())
	cl := &capListener{Listener: ln, max: MaxMetricsConns, conns: make(map[net.Conn]connWait)}
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		cl.state(c, s)
		if hook != nil {
			hook(c, s)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(cl)
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// capListener caps the connections of an http.Server (its ConnState
// reports their states): at max, Accept closes the connection that has
// waited longest for a request to make room, or the newcomer if every
// connection is in the middle of a request.
type capListener struct {
	net.Listener
	max   int
	mu    sync.Mutex
	conns map[net.Conn]connWait
}

// connWait is when a connection began to wait for a request; zero while
// it is serving one.
type connWait struct{ since time.Time }

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var victim net.Conn
		if len(l.conns) >= l.max {
			var oldest time.Time
			for vc, w := range l.conns {
				if !w.since.IsZero() && (victim == nil || w.since.Before(oldest)) {
					victim, oldest = vc, w.since
				}
			}
			if victim == nil {
				l.mu.Unlock()
				c.Close() // every connection is busy: the newcomer waits no slot
				continue
			}
			delete(l.conns, victim)
		}
		l.conns[c] = connWait{since: time.Now()}
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
		}
		return c, nil
	}
}

// state is the http.Server's ConnState hook.
func (l *capListener) state(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return // made room for another: already forgotten
	}
	switch s {
	case http.StateActive:
		l.conns[c] = connWait{}
	case http.StateIdle:
		l.conns[c] = connWait{since: time.Now()}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
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
		Handler:           noBody(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
}

// noBody refuses a request with a body (the metrics take none) and
// closes its connection without reading the body. Otherwise net/http
// reads up to 256 KiB of a body the handler left unread, for up to
// ReadTimeout, with the connection active and so never closed for a
// newcomer (capListener): 16 POSTs whose bodies never come held the port
// for 10 s at a time, and every scrape in that time was refused.
func noBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		// The body is not read: a read deadline already passed makes
		// net/http's own attempt to drain it end at once.
		http.NewResponseController(w).SetReadDeadline(time.Now())
		w.Header().Set("Connection", "close")
		http.Error(w, "the metrics take no request body", http.StatusBadRequest)
	})
}

func (m *Metrics) observe(command, result string, d time.Duration) {
	m.requests.WithLabelValues(command, result).Inc()
	m.latency.Observe(d.Seconds())
}

// CountConnections adds the server's exact counts of connections refused
// over a cap and closed to make room (internal/server's Refused and
// Evicted): tcplab_svr_connections_refused_total and
// tcplab_svr_connections_evicted_total. The log says so only in part.
func (m *Metrics) CountConnections(refused, evicted func() uint64) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tcplab_svr_connections_refused_total", Help: "Connections refused at once, over --max-conns or --max-conns-per-addr.",
		}, func() float64 { return float64(refused()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tcplab_svr_connections_evicted_total", Help: "Connections closed while waiting for their request, to make room for a new one at a full server.",
		}, func() float64 { return float64(evicted()) }),
	)
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
