package status

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// The metrics pass client_golang's linter (promlint: names, units,
// counters' _total, help texts), both as gathered and as --metrics serves
// them over HTTP, with every series present.
func TestMetricsLint(t *testing.T) {
	m := NewMetrics()
	for _, r := range []string{ResultOK, ResultUnknown, ResultDenied, ResultLimited, ResultError, ResultNoName, ResultWriteTO} {
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
