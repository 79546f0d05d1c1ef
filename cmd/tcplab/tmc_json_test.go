package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// tmcJSON runs tmc with args and decodes the one JSON object it prints.
func tmcJSON(t *testing.T, args ...string) (code int, rep map[string]any, errOut string) {
	t.Helper()
	code, out, errOut := runCmd(t, "", append([]string{"tmc", "--json"}, args...)...)
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("tmc --json %q: exit %d, stdout %q is not one JSON object: %v (stderr %q)", args, code, out, err, errOut)
	}
	if dec.More() {
		t.Fatalf("tmc --json: more than one object: %q", out)
	}
	return code, rep, errOut
}

// tmc --json prints one object whatever the ending, with "ok" and, on
// failure, "error" (the line on standard error) and what did arrive.
// Before, it had neither field, and an early close printed nothing.
func TestTMCJSONSaysHowItEnded(t *testing.T) {
	t.Run("whole answer", func(t *testing.T) {
		host, port := badTMS(t, func(m []byte) []byte { return bytes.Repeat(m, 3) })
		code, rep, _ := tmcJSON(t, "--copies", "3", host, port, "abc")
		if code != 0 || rep["ok"] != true || rep["error"] != nil || rep["bytes"] != 9.0 || rep["copies_expected"] != 3.0 || rep["string_bytes"] != 3.0 {
			t.Fatalf("exit %d: %v", code, rep)
		}
	})
	cases := []struct {
		name   string
		behave func(net.Conn, *peer)
		bytes  float64
		error  string
	}{
		{"closed before any byte", closingPeer, 0, "the server closed the connection without sending anything"},
		{"reset mid-answer", resettingPeer("abcabc", true), 6, "the server reset the connection after 6 bytes: the answer is incomplete"},
		{"wrong answer", func(c net.Conn, p *peer) { io.Copy(io.Discard, c); c.Write([]byte("abcabd")) }, 6,
			`answer is not whole copies of "abc": byte 5 differs`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startPeer(t, tc.behave)
			code, rep, errOut := tmcJSON(t, "127.0.0.1", p.port, "abc")
			if code != 1 || rep["ok"] != false || rep["error"] != tc.error || rep["bytes"] != tc.bytes {
				t.Fatalf("exit %d: %v; want ok false, error %q, bytes %v", code, rep, tc.error, tc.bytes)
			}
			if errOut != "tcplab tmc: "+tc.error+"\n" {
				t.Fatalf("stderr %q", errOut)
			}
		})
	}
	t.Run("nobody listening", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		code, rep, _ := tmcJSON(t, "127.0.0.1", port, "abc")
		if code != 1 || rep["ok"] != false || !strings.Contains(rep["error"].(string), "connection refused") {
			t.Fatalf("exit %d: %v", code, rep)
		}
	})
}

// A one-read answer has no transfer to time: its "rate" was the 30,000
// bytes of the first read divided by the microseconds to the end of file
// (1.45 GB/s). The summary says so, and the JSON rate is null.
func TestTMCOneReadHasNoRate(t *testing.T) {
	host, port := badTMS(t, func(m []byte) []byte { return bytes.Repeat(m, 2) })
	code, out, _ := runCmd(t, "", "tmc", "--quiet", "--copies", "2", host, port, "abc")
	if code != 0 || !strings.Contains(out, "summary: 6 bytes in 1 chunk (smallest 6, median 6, largest 6) in one read: no rate to measure; first byte after ") {
		t.Fatalf("exit %d: %q", code, out)
	}
	host, port = badTMS(t, func(m []byte) []byte { return bytes.Repeat(m, 2) })
	_, rep, _ := tmcJSON(t, "--copies", "2", host, port, "abc")
	if v, ok := rep["bytes_per_second"]; !ok || v != nil {
		t.Fatalf("bytes_per_second %v (present %v), want null: %v", v, ok, rep)
	}
}

// --json-stream prints one JSON object per line: "start", one "interval"
// per --interval while the answer arrives, and "end" with the --json
// report, as iperf3 --json-stream does.
func TestTMCJSONStream(t *testing.T) {
	p := startPeer(t, func(c net.Conn, p *peer) {
		io.Copy(io.Discard, c)
		// A slow sender: the pace is the point, several intervals long.
		for range 10 {
			c.Write([]byte("abc"))
			time.Sleep(60 * time.Millisecond)
		}
		c.Close()
	})
	code, out, errOut := runCmd(t, "", "tmc", "--json-stream", "--interval", "100ms", "--copies", "10", "127.0.0.1", p.port, "abc")
	if code != 0 {
		t.Fatalf("exit %d: %q %q", code, out, errOut)
	}
	type event struct {
		Event string         `json:"event"`
		Data  map[string]any `json:"data"`
	}
	var events []event
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	if len(events) < 4 || events[0].Event != "start" || events[len(events)-1].Event != "end" {
		t.Fatalf("want start, intervals, end: %q", out)
	}
	var sum float64
	for _, e := range events[1 : len(events)-1] {
		if e.Event != "interval" {
			t.Fatalf("event %q between start and end: %q", e.Event, out)
		}
		sum += e.Data["bytes"].(float64)
		if e.Data["bytes_expected"] != 30.0 || e.Data["percent"] == nil {
			t.Fatalf("interval without the total and percentage: %v", e.Data)
		}
	}
	end := events[len(events)-1].Data
	if sum != 30 || end["bytes"] != 30.0 || end["ok"] != true {
		t.Fatalf("intervals add to %v bytes; end %v", sum, end)
	}
	if events[0].Data["port"] == nil || events[0].Data["bytes_expected"] != 30.0 {
		t.Fatalf("start: %v", events[0].Data)
	}
}

// --json and --json-stream cannot go together; --interval needs
// --json-stream.
func TestTMCJSONFlagsCombine(t *testing.T) {
	for _, args := range [][]string{
		{"tmc", "--json", "--json-stream", "localhost", "2000", "abc"},
		{"tmc", "--interval", "2s", "localhost", "2000", "abc"},
		{"tmc", "--json-stream", "--interval", "0s", "localhost", "2000", "abc"},
	} {
		if code, _, errOut := runCmd(t, "", args...); code != exitUsage || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, %q", args, code, errOut)
		}
	}
}
