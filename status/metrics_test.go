package status

import (
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
	for _, r := range []string{resultOK, resultUnknown, resultDenied, resultLimited, resultError, resultNoName, resultWriteTO} {
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
