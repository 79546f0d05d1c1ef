package main

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// waitMetric polls svr's metrics at url until they have line: another
// process's metrics page gives no event.
func waitMetric(t *testing.T, url, line string) {
	t.Helper()
	var body []byte
	if !testkit.Poll(eventWait, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(body), "\n"+line+"\n")
	}) {
		t.Fatalf("metrics never read %q:\n%s", line, body)
	}
}

// A full server serves its real clients: when every slot is held by a
// connection that has said nothing (here 4 addresses × 5, each at its
// per-address cap, all 20 slots), a client that asks is served, and the
// connection silent longest makes room. Before, the real client was
// refused "busy: max number of clients reached (20)", as 16 IPv6 /64s
// × 64 silent connections refused 5 of 9 real requests at the defaults.
func TestSVRFullOfSilentConnectionsServesARealClient(t *testing.T) {
	p := startInProcess(t, nil, "svr", "--native", "--log-format", "json", "--max-conns", "20", "--max-conns-per-addr", "5", "--read-timeout", "1m", "--metrics", "127.0.0.1:0", "0")
	m := regexp.MustCompile(`"url":"([^"]+)"`).FindStringSubmatch(p.Stderr.String())
	if m == nil {
		t.Fatalf("no metrics url: %s", p.Stderr.String())
	}
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		for range 5 {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			c, err := d.Dial("tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			silent = append(silent, c)
		}
	}
	// Deferred accept keeps a silent connection in the kernel for about
	// a second before svr takes it: wait until svr serves all 20.
	waitMetric(t, m[1], "tcplab_svr_open_connections 20")
	for i := range 3 {
		code, out, errOut := runCmd(t, "", "wps", "127.0.0.1", p.Port, "w")
		if code != 0 || !strings.Contains(out, "load average") {
			t.Fatalf("real request %d at a server full of silent connections: exit %d, %q %q", i+1, code, out, errOut)
		}
	}
	// The first made room by closing a connection silent since it came
	// (the next ones too, if they came before the slot of the one before
	// was free), and the metrics count each: read them until they do
	// (no event, as in waitMetric).
	var body []byte
	value := func(name string) int {
		v := regexp.MustCompile(`\n` + regexp.QuoteMeta(name) + ` (\d+)\n`).FindStringSubmatch(string(body))
		if v == nil {
			return -1
		}
		n, _ := strconv.Atoi(v[1])
		return n
	}
	evicted := func() int { return value("tcplab_svr_connections_evicted_total") }
	if !testkit.Poll(eventWait, func() bool {
		resp, err := http.Get(m[1])
		if err != nil {
			return false
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		// The wps handlers are done: the silent ones left are the others.
		return value(`tcplab_svr_requests_total{command="w",result="ok"}`) == 3 && value("tcplab_svr_open_connections")+evicted() == 20
	}) {
		t.Fatalf("metrics: %s", body)
	}
	if evicted() < 1 {
		t.Fatalf("no eviction counted:\n%s", body)
	}
	closed := 0
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(time.Millisecond)) // a look, not a wait: closed ones fail at once
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if closed != evicted() {
		t.Errorf("%d silent connections closed, %d evictions counted", closed, evicted())
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
