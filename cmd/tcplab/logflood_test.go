package main

import (
	"fmt"
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

// clientsSeen counts the clients that out's "client is at" lines stand
// for: one a line, and N for "client is at … and N more like it in the
// last 10s" (the log limit's count).
func clientsSeen(out string) int {
	n := 0
	more := regexp.MustCompile(`^client is at … and ([\d,]+) more like it`)
	for _, line := range strings.Split(out, "\n") {
		if m := more.FindStringSubmatch(line); m != nil {
			k, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
			n += k
		} else if strings.HasPrefix(line, "client is at ") {
			n++
		}
	}
	return n
}

// floodSVR sends n requests of "w" to svr at addr, one connection each,
// and reads each answer to its end.
func floodSVR(t *testing.T, addr string, n int) {
	t.Helper()
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(eventWait))
		io.WriteString(c, "w")
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		c.Close()
	}
}

// A flood costs a bounded number of log lines. 62,389 requests in 10 s
// wrote 62,393 records, one per client ("client is at", the tutorial's
// line on standard output) and one per rate-limited request; a TLS
// handshake flood wrote one per refused connection. Now each kind of line
// is written at most 10 times in 10 s and then counted: the counts come
// when the interval ends or, as here, when svr stops.
func TestSVRLogsCannotBeFlooded(t *testing.T) {
	const n = 300
	t.Run("text", func(t *testing.T) {
		var stdout testkit.SafeBuffer
		p := startInProcess(t, &stdout, "svr", "--native", "--rate", "0.001", "--burst", "1", "0")
		floodSVR(t, p.Addr, n)
		p.Stop(t)
		out := stdout.String()
		if lines := strings.Count(out, "\n"); lines > 12 { // "listening on port N", 10 clients, the count
			t.Errorf("%d requests wrote %d lines on standard output:\n%s", n, lines, tail(out))
		}
		if !strings.Contains(out, "client is at … and 290 more like it in the last ") || clientsSeen(out) != n {
			t.Errorf("no count of the lines held back, or a wrong one:\n%s", out)
		}
	})
	t.Run("--json", func(t *testing.T) {
		var stdout testkit.SafeBuffer
		p := startInProcess(t, &stdout, "svr", "--json", "--native", "--rate", "0.001", "--burst", "1", "0")
		floodSVR(t, p.Addr, n)
		p.Stop(t)
		out := stdout.String()
		clients := strings.Count(out, `"event":"client"`)
		if clients > 10 || !strings.Contains(out, fmt.Sprintf(`"count":%d,"event":"clients_not_shown"`, n-clients)) ||
			!strings.HasSuffix(out, `{"event":"end","ok":true}`+"\n") {
			t.Errorf("%d client events, and no count of the %d others:\n%s", clients, n-clients, tail(out))
		}
	})
	t.Run("TLS handshake flood", func(t *testing.T) {
		f := makeTLSFiles(t)
		p := startInProcess(t, nil, "svr", "--log-format", "json", "--rate", "0", "--metrics", "127.0.0.1:0", "--tls-cert", f.svrCert, "--tls-key", f.svrKey, "0")
		before := strings.Count(p.Stderr.String(), "\n")
		url := regexp.MustCompile(`"url":"([^"]+)"`).FindStringSubmatch(p.Stderr.String())
		if url == nil {
			t.Fatalf("no metrics url: %s", p.Stderr.String())
		}
		for range n {
			// Plaintext at a TLS server: a failed handshake each.
			c, err := net.Dial("tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(eventWait))
			io.WriteString(c, "w")
			io.Copy(io.Discard, c)
			c.Close()
		}
		// The metrics keep the exact count, once the last handler has
		// counted its client (after the client's close, and the log,
		// flooded on purpose, drops lines): another process's metrics
		// page gives no event, so it is read until it has the count.
		want := `tcplab_svr_requests_total{command="other",result="tls_fail"} 300`
		var body []byte
		if !testkit.Poll(eventWait, func() bool {
			resp, err := http.Get(url[1])
			if err != nil {
				return false
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.Contains(string(body), want)
		}) {
			t.Errorf("metrics: no %s in\n%s", want, body)
		}
		p.Stop(t)
		errOut := p.Stderr.String()
		if lines := strings.Count(errOut, "\n") - before; lines > 20 {
			t.Errorf("%d refused handshakes wrote %d lines:\n%s", n, lines, tail(errOut))
		}
		if !strings.Contains(errOut, `"msg":"client refused … and 290 more like it in the last `) {
			t.Errorf("no count of the refusals held back:\n%s", tail(errOut))
		}
	})
}
